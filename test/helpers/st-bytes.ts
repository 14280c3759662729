/**
 * Hand-written safetensors bytes for tests. Deliberately independent of src/io/safetensors:
 * the files whose parsing we test must not be produced by the code under test.
 */
import { closeSync, ftruncateSync, mkdtempSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const enc = new TextEncoder();

/** 8-byte little-endian length prefix, computed by hand (no DataView). */
export function u64le(n: number | bigint): Uint8Array {
  let v = BigInt(n);
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function concat(...parts: (Uint8Array | ArrayLike<number>)[]): Uint8Array {
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** prefix(N) + header bytes + data. `header` is raw text or raw bytes, used verbatim. */
export function rawFile(
  header: string | Uint8Array,
  data: Uint8Array | number = 0,
  lengthOverride?: number | bigint,
): Uint8Array {
  const h = typeof header === 'string' ? enc.encode(header) : header;
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  return concat(u64le(lengthOverride ?? h.length), h, d);
}

export interface HandTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** Raw little-endian bytes of the tensor. */
  data: Uint8Array;
}

/** A valid file: tensors placed in the order given, offsets computed here. */
export function stFile(tensors: HandTensor[], metadata?: Record<string, string>, pad = true): Uint8Array {
  const entries: string[] = [];
  if (metadata !== undefined) entries.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  for (const t of tensors) {
    entries.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${off},${off + t.data.length}]}`,
    );
    off += t.data.length;
  }
  let text = `{${entries.join(',')}}`;
  const len = enc.encode(text).length;
  if (pad) text += ' '.repeat((8 - (len % 8)) % 8);
  return rawFile(text, concat(...tensors.map((t) => t.data)));
}

/** Little-endian bytes of float32 values (via Float32Array; the platform is little-endian). */
export function f32(...xs: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(xs).buffer);
}
export function f64(...xs: number[]): Uint8Array {
  return new Uint8Array(new Float64Array(xs).buffer);
}
export function i64(...xs: number[]): Uint8Array {
  return new Uint8Array(new BigInt64Array(xs.map(BigInt)).buffer);
}
export function u16(...xs: number[]): Uint8Array {
  return new Uint8Array(new Uint16Array(xs).buffer);
}

/** A throwaway folder; `cleanup` removes it. */
export function tempDir(prefix = 'avg-ckpt-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `bytes` at `path`, creating parent folders. Returns the path. */
export function put(path: string, bytes: Uint8Array | string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  return path;
}

/** A small checkpoint with one F32 tensor "w" of the given values (and optional metadata). */
export function simpleCkpt(values: number[], metadata?: Record<string, string>): Uint8Array {
  return stFile([{ name: 'w', dtype: 'F32', shape: [values.length], data: f32(...values) }], metadata);
}

/** Writes a sharded checkpoint folder: `shards` maps shard file -> tensors; index built by hand. */
export function putSharded(
  dir: string,
  shards: Record<string, HandTensor[]>,
  weightMap?: Record<string, string>,
): void {
  const map: Record<string, string> = {};
  let total = 0;
  for (const [file, ts] of Object.entries(shards)) {
    put(join(dir, file), stFile(ts));
    for (const t of ts) {
      map[t.name] = file;
      total += t.data.length;
    }
  }
  put(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap ?? map }),
  );
}

/**
 * Writes a safetensors file whose data is sparse zeros (ftruncate), with a few byte patches at
 * data-relative offsets: a 5 GB tensor costs a few KB of disk. `entries` are placed in order.
 */
export function putSparse(
  path: string,
  entries: { name: string; dtype: string; shape: number[]; bytes: number }[],
  patches: { offset: number; data: Uint8Array }[] = [],
  metadata?: Record<string, string>,
): number {
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  for (const e of entries) {
    parts.push(
      `${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${e.shape.join(',')}],"data_offsets":[${off},${off + e.bytes}]}`,
    );
    off += e.bytes;
  }
  let text = `{${parts.join(',')}}`;
  text += ' '.repeat((8 - (enc.encode(text).length % 8)) % 8);
  const head = rawFile(text);
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head, 0, head.length, 0);
    ftruncateSync(fd, head.length + off);
    for (const p of patches) writeSync(fd, p.data, 0, p.data.length, head.length + p.offset);
  } finally {
    closeSync(fd);
  }
  return head.length + off;
}
