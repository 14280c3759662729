/** Hand-built .npy and .npz (zip) bytes for tests, independent of src/io/npy.ts. */
import { deflateRawSync } from 'node:zlib';

const enc = new TextEncoder();

/** A version-1 .npy with `header` as the dict text (padded so the data starts at a multiple of 64). */
export function npyBytes(
  descr: string,
  shape: number[],
  data: Uint8Array,
  opts: { version?: 1 | 2; rawHeader?: string; fortran?: boolean } = {},
): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict =
    opts.rawHeader ??
    `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const version = opts.version ?? 1;
  const pre = 6 + 2 + (version === 1 ? 2 : 4);
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  dict += `${' '.repeat(total - pre - dict.length - 1)}\n`;
  const h = enc.encode(dict);
  const out = new Uint8Array(pre + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  if (version === 1) {
    out[8] = h.length & 0xff;
    out[9] = h.length >> 8;
  } else {
    for (let i = 0; i < 4; i++) out[8 + i] = (h.length >>> (8 * i)) & 0xff;
  }
  out.set(h, pre);
  out.set(data, pre + h.length);
  return out;
}

function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

/**
 * A zip of the given entries, stored or deflated. With `zip64`, the central
 * directory gives sizes and offsets in ZIP64 extra fields and ends with the ZIP64 records.
 */
export function zipBytes(
  entries: { name: string; data: Uint8Array; deflate?: boolean }[],
  opts: { zip64?: boolean } = {},
): Uint8Array {
  const parts: number[] = [];
  const central: number[] = [];
  const u16 = (a: number[], v: number) => a.push(v & 0xff, (v >> 8) & 0xff);
  const u32 = (a: number[], v: number) => a.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  for (const e of entries) {
    const name = enc.encode(e.name);
    const body = e.deflate ? deflateRawSync(e.data) : e.data;
    const crc = crc32(e.data);
    const offset = parts.length;
    u32(parts, 0x04034b50);
    u16(parts, 20);
    u16(parts, 0);
    u16(parts, e.deflate ? 8 : 0);
    u16(parts, 0);
    u16(parts, 0);
    u32(parts, crc);
    u32(parts, body.length);
    u32(parts, e.data.length);
    u16(parts, name.length);
    u16(parts, 0);
    parts.push(...name, ...body);
    u32(central, 0x02014b50);
    u16(central, 20);
    u16(central, 20);
    u16(central, 0);
    u16(central, e.deflate ? 8 : 0);
    u16(central, 0);
    u16(central, 0);
    const big = opts.zip64 === true;
    u32(central, crc);
    u32(central, big ? 0xffffffff : body.length);
    u32(central, big ? 0xffffffff : e.data.length);
    u16(central, name.length);
    u16(central, big ? 28 : 0);
    u16(central, 0);
    u16(central, 0);
    u16(central, 0);
    u32(central, 0);
    u32(central, big ? 0xffffffff : offset);
    central.push(...name);
    if (big) {
      u16(central, 1);
      u16(central, 24);
      for (const v of [e.data.length, body.length, offset]) {
        u32(central, v);
        u32(central, 0);
      }
    }
  }
  const cdOffset = parts.length;
  const eocd: number[] = [];
  if (opts.zip64) {
    const at = cdOffset + central.length;
    u32(eocd, 0x06064b50);
    u32(eocd, 44);
    u32(eocd, 0);
    u16(eocd, 45);
    u16(eocd, 45);
    u32(eocd, 0);
    u32(eocd, 0);
    for (const v of [entries.length, entries.length, central.length, cdOffset]) {
      u32(eocd, v);
      u32(eocd, 0);
    }
    u32(eocd, 0x07064b50);
    u32(eocd, 0);
    u32(eocd, at);
    u32(eocd, 0);
    u32(eocd, 1);
  }
  const few = opts.zip64 ? 0xffff : entries.length;
  u32(eocd, 0x06054b50);
  u16(eocd, 0);
  u16(eocd, 0);
  u16(eocd, few);
  u16(eocd, few);
  u32(eocd, opts.zip64 ? 0xffffffff : central.length);
  u32(eocd, opts.zip64 ? 0xffffffff : cdOffset);
  u16(eocd, 0);
  return Uint8Array.from([...parts, ...central, ...eocd]);
}
