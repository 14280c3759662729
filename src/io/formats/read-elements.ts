/**
 * The one way tensor data is read: elements [start, start + count) of a source, in C order,
 * into a caller's buffer, as little-endian bytes. A contiguous source is one ranged read; a
 * strided view is gathered in bounded pieces; big-endian elements are swapped after reading.
 */
import { AvgCkptError } from '../../errors.js';
import type { FilePool } from '../storage/file-pool.js';
import { elementBytes, isContiguous, numelOf, type TensorSource } from './tensor-source.js';

/** A range of a source's elements in C order: what a read-ahead queue holds. */
export interface ElementRange {
  readonly source: TensorSource;
  readonly start: number;
  readonly count: number;
}

/** A strided piece is read in one go when its storage span is at most this many bytes... */
const WINDOW_BYTES = 4 << 20;
/**
 * ...and it wastes at most this many unwanted bytes; otherwise it is split further. About what
 * one more read costs: reading a little too much beats thousands of tiny reads.
 */
const MAX_WASTE_BYTES = 64 << 10;

/** Bytes `readElements` writes for `count` elements of `src`. */
export function rangeBytes(r: ElementRange): number {
  return r.count * elementBytes(r.source);
}

/** Reads elements [start, start + count) of `src` in C order into `into` (from its start). */
export async function readElements(
  pool: FilePool,
  src: TensorSource,
  start: number,
  count: number,
  into: Uint8Array,
): Promise<void> {
  const size = elementBytes(src);
  const total = numelOf(src.shape);
  if (!Number.isInteger(size) || start < 0 || count < 0 || start + count > total || into.byteLength < count * size) {
    throw new AvgCkptError(
      'internal',
      `read of elements [${start}, ${start + count}) of ${total} (${src.dtype}) into ${into.byteLength} bytes`,
      { file: src.file, tensor: src.name },
    );
  }
  if (count === 0) return;
  if (isContiguous(src)) await pool.read(src.file, src.position + start * size, into, count * size);
  else for (const box of boxesOf(src.shape, start, start + count)) await gather(pool, src, box, start, into);
  if (src.bigEndian === true) swapBytes(into.subarray(0, count * size), size);
}

/** A product of index ranges: dimension d runs over [lo[d], lo[d] + len[d]). */
interface Box {
  readonly lo: number[];
  readonly len: number[];
}

/** Splits the C-order range [a, b) of a tensor of `shape` into at most 2 x rank boxes. */
export function* boxesOf(shape: readonly number[], a: number, b: number, d = 0, prefix: number[] = []): Generator<Box> {
  if (a >= b) return;
  if (d === shape.length) {
    yield { lo: [...prefix], len: prefix.map(() => 1) };
    return;
  }
  const inner = numelOf(shape.slice(d + 1));
  const full = (lo: number, n: number): Box => ({
    lo: [...prefix, lo, ...shape.slice(d + 1).map(() => 0)],
    len: [...prefix.map(() => 1), n, ...shape.slice(d + 1)],
  });
  let i = Math.floor(a / inner);
  const last = Math.floor((b - 1) / inner);
  if (a % inner !== 0 || (i === last && b - a < inner)) {
    // a partial first row (or the whole range inside one row)
    const end = Math.min(b, (i + 1) * inner);
    yield* boxesOf(shape, a - i * inner, end - i * inner, d + 1, [...prefix, i]);
    if (end === b) return;
    i++;
  }
  const fullEnd = b % inner === 0 ? last + 1 : last;
  if (fullEnd > i) yield full(i, fullEnd - i);
  if (b % inner !== 0 && last >= i && fullEnd === last)
    yield* boxesOf(shape, 0, b - last * inner, d + 1, [...prefix, last]);
}

/**
 * Reads one box of a strided source. When its storage span is small and dense enough it is
 * read in one piece and gathered in memory; otherwise it is halved along its largest-stride
 * dimension (a transposed matrix becomes a few stored rows per read).
 */
async function gather(pool: FilePool, src: TensorSource, box: Box, start: number, into: Uint8Array): Promise<void> {
  const strides = src.strides as readonly number[];
  const size = elementBytes(src);
  let n = 1;
  let span = 1;
  let base = 0;
  let widest = -1;
  for (let d = 0; d < box.len.length; d++) {
    n *= box.len[d];
    span += (box.len[d] - 1) * strides[d];
    base += box.lo[d] * strides[d];
    if (box.len[d] > 1 && strides[d] > 0 && (widest < 0 || strides[d] > strides[widest])) widest = d;
  }
  if (widest >= 0 && (span * size > WINDOW_BYTES || (span - n) * size > MAX_WASTE_BYTES)) {
    const half = Math.floor(box.len[widest] / 2);
    for (const [lo, len] of [
      [box.lo[widest], half],
      [box.lo[widest] + half, box.len[widest] - half],
    ]) {
      const sub = { lo: [...box.lo], len: [...box.len] };
      sub.lo[widest] = lo;
      sub.len[widest] = len;
      await gather(pool, src, sub, start, into);
    }
    return;
  }
  const window = new Uint8Array(span * size);
  await pool.read(src.file, src.position + base * size, window);
  scatter(window, into, size, box, strides, src.shape, start);
}

/** Copies a box's elements from `window` (its storage span) to their C-order places in `into`. */
function scatter(
  window: Uint8Array,
  into: Uint8Array,
  size: number,
  box: Box,
  strides: readonly number[],
  shape: readonly number[],
  start: number,
): void {
  // copy in the widest unit both buffers are aligned to (never float views: they may change NaN bits)
  const unit = [4, 2, 1].find((u) => size % u === 0 && into.byteOffset % u === 0) ?? 1;
  const from = units(window, unit);
  const to = units(into, unit);
  const k = size / unit;
  const rank = box.len.length;
  // the last dimension is walked in a tight loop; the others by an odometer over `idx`
  const inner = rank === 0 ? 1 : box.len[rank - 1];
  const innerStride = rank === 0 ? 0 : strides[rank - 1] * k;
  const cStrides = shape.map((_, d) => numelOf(shape.slice(d + 1)));
  const idx = new Array<number>(rank).fill(0);
  const rows = box.len.reduce((a, b) => a * b, 1) / inner;
  for (let r = 0; r < rows; r++) {
    let f = 0;
    let t = -start;
    for (let d = 0; d < rank; d++) {
      f += idx[d] * strides[d];
      t += (box.lo[d] + idx[d]) * cStrides[d];
    }
    f *= k;
    t *= k;
    if (k === 1) for (let j = 0; j < inner; j++) to[t + j] = from[f + j * innerStride];
    else for (let j = 0; j < inner; j++) for (let u = 0; u < k; u++) to[t + j * k + u] = from[f + j * innerStride + u];
    for (let d = rank - 2; d >= 0; d--) {
      if (++idx[d] < box.len[d]) break;
      idx[d] = 0;
    }
  }
}

/** `bytes` as whole units of 1, 2 or 4 bytes (its byte offset a multiple of `unit`). */
function units(bytes: Uint8Array, unit: number): Uint8Array | Uint16Array | Uint32Array {
  const n = Math.floor(bytes.byteLength / unit);
  if (unit === 4) return new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  if (unit === 2) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  return bytes;
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.byteLength; i += size) bytes.subarray(i, i + size).reverse();
}
