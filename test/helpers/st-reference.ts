/**
 * An independent, deliberately simple safetensors reader/writer for tests: whole files in
 * memory, no validation. It shares no code with src/, so tests built on it check the real
 * implementation against something else.
 */
import { closeSync, openSync, readFileSync, readSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface RefTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export function readRef(path: string): { tensors: Record<string, RefTensor>; metadata: Record<string, string> } {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const tensors: Record<string, RefTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') {
      metadata = v as unknown as Record<string, string>;
      continue;
    }
    const [s, e] = v.data_offsets;
    tensors[k] = { dtype: v.dtype, shape: v.shape, bytes: new Uint8Array(b.subarray(8 + n + s, 8 + n + e)) };
  }
  return { tensors, metadata };
}

/** All tensors of a checkpoint folder (every .safetensors file in it). */
export function readRefDir(dir: string): Record<string, RefTensor> {
  const out: Record<string, RefTensor> = {};
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors')))
    Object.assign(out, readRef(join(dir, f)).tensors);
  return out;
}

export function writeRef(path: string, tensors: Record<string, RefTensor>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const [k, t] of Object.entries(tensors)) {
    header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.byteLength] };
    off += t.bytes.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(
    path,
    Buffer.concat([
      len,
      json,
      ...Object.values(tensors).map((t) => Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength)),
    ]),
  );
}

// ---- element decoding, written from the format definitions ----

export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

export function bf16ToNumber(h: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, h << 16);
  return dv.getFloat32(0);
}

/** Values of a tensor as float64 (F32, F16, BF16, F64) or as numbers (I64 via BigInt). */
export function values(t: RefTensor): number[] {
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out: number[] = [];
  switch (t.dtype) {
    case 'F64':
      for (let i = 0; i < t.bytes.byteLength; i += 8) out.push(dv.getFloat64(i, true));
      break;
    case 'F32':
      for (let i = 0; i < t.bytes.byteLength; i += 4) out.push(dv.getFloat32(i, true));
      break;
    case 'F16':
      for (let i = 0; i < t.bytes.byteLength; i += 2) out.push(f16ToNumber(dv.getUint16(i, true)));
      break;
    case 'BF16':
      for (let i = 0; i < t.bytes.byteLength; i += 2) out.push(bf16ToNumber(dv.getUint16(i, true)));
      break;
    case 'I64':
      for (let i = 0; i < t.bytes.byteLength; i += 8) out.push(Number(dv.getBigInt64(i, true)));
      break;
    default:
      throw new Error(`values: ${t.dtype}`);
  }
  return out;
}

export function bits16(t: RefTensor): number[] {
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out: number[] = [];
  for (let i = 0; i < t.bytes.byteLength; i += 2) out.push(dv.getUint16(i, true));
  return out;
}

/**
 * True when the 16-bit pattern `h` is the correctly rounded (nearest, ties to even) value of
 * `x`: no neighbouring pattern is closer, and on a tie the mantissa is even.
 */
export function isNearestEven16(h: number, x: number, decode: (h: number) => number): boolean {
  const v = decode(h);
  const d = Math.abs(v - x);
  for (const nb of [h - 1, h + 1]) {
    if (nb < 0 || nb > 0xffff || (nb & 0x7fff) === 0x7fff || ((nb ^ h) & 0x8000) !== 0) continue;
    const w = decode(nb);
    if (!Number.isFinite(w)) continue;
    const dn = Math.abs(w - x);
    if (dn < d) return false;
    if (dn === d && (h & 1) === 1) return false;
  }
  // crossing zero: +0 and -0 neighbour the smallest subnormals of either sign
  return true;
}

export function f32(x: number): number {
  return Math.fround(x);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function f16Bytes(values: number[]): Uint8Array {
  // exact for the small integers and binary fractions the tests use
  const out = new Uint16Array(values.length);
  values.forEach((v, i) => {
    let best = 0;
    for (let h = 0; h < 0x7c00; h++)
      if (Math.abs(f16ToNumber(h) - Math.abs(v)) < Math.abs(f16ToNumber(best) - Math.abs(v))) best = h;
    out[i] = best | (v < 0 ? 0x8000 : 0);
  });
  return new Uint8Array(out.buffer);
}

export function i64Bytes(values: number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
}

/** A header alone, read by hand (for files too large to read whole, sparse ones included). */
export function readRefHeader(path: string): {
  start: number;
  json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
} {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(8);
    readSync(fd, b, 0, 8, 0);
    const len = Number(b.readBigUInt64LE(0));
    const h = Buffer.alloc(len);
    readSync(fd, h, 0, len, 8);
    return { start: 8 + len, json: JSON.parse(h.toString('utf8')) };
  } finally {
    closeSync(fd);
  }
}

/** Exactly `length` bytes at `position`. */
export function readRefAt(path: string, position: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    const n = readSync(fd, b, 0, length, position);
    if (n !== length) throw new Error(`readRefAt: ${n} of ${length} bytes at ${position} in ${path}`);
    return b;
  } finally {
    closeSync(fd);
  }
}
