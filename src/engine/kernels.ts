/**
 * WebAssembly SIMD kernels, written in kernels.wat. Accumulate: acc[i] += w * x[i] two float64
 * lanes at a time. In plain JS the bf16 loop runs at ~0.5 GB/s of input on one core, well under a cold disk read; SIMD
 * widens bf16 and f32 in registers and is several times faster. The arithmetic is the same IEEE
 * multiply then add, in the same order, so results are bit-identical to `accumulate`. Encode to
 * bf16 and f16: the same steps as `encode` (round-to-odd to f32, then round-to-nearest-even),
 * four lanes at a time, bit-identical to it; to f32: round to nearest even, as `encode`. Zeroing
 * the accumulator and the finiteness check of encoded values are kernels too (kernels.wat says
 * what they save).
 *
 * The kernels can only see their own memory, so the engine allocates its read buffers and its
 * accumulator from an `Arena` over that memory: the data is never copied in.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AvgCkptError } from '../errors.js';
import { bytesPerElement, type ReadableFloat, type WritableFloat } from '../io/dtype.js';
import { accumulate, firstNonFinite } from '../io/float-codec.js';

/**
 * The kernels' binaries, assembled from kernels.wat by scripts/assemble-kernels.js (`npm run
 * build` next to the compiled kernels.js; the vitest global setup next to this file). A shared
 * memory can only be imported as shared, hence one binary for each kind of memory.
 */
function kernelBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const url = new URL(shared ? './kernels.wasm' : './kernels-plain.wasm', import.meta.url);
  try {
    return new Uint8Array(readFileSync(url));
  } catch (e) {
    const why = (e as Error).message;
    throw new AvgCkptError(
      'internal',
      `the WebAssembly kernels are missing (${fileURLToPath(url)}: ${why}); run npm run build`,
    );
  }
}

const compiled = new Map<boolean, WebAssembly.Module | null>();

/** The compiled kernels, or null where WebAssembly SIMD is unavailable. */
function kernelModule(shared: boolean): WebAssembly.Module | null {
  if (!compiled.has(shared)) {
    const bytes = kernelBytes(shared);
    try {
      compiled.set(shared, new WebAssembly.Module(bytes));
    } catch {
      compiled.set(shared, null);
    }
  }
  return compiled.get(shared) ?? null;
}

type Kernel = (src: number, dst: number, n: number, w: number) => void;
/** Encodes n float64 at byte offset src as bf16 or f16 at dst; n a multiple of 8. */
export type EncodeKernel = (src: number, dst: number, n: number) => void;
type Exports = Record<'f32' | 'bf16' | 'f64', Kernel> &
  Record<'toBf16' | 'toF16' | 'toF32', EncodeKernel> & {
    zero: (dst: number, n: number) => void;
    nonFinite16: (src: number, n: number, mask: number) => number;
    nonFinite32: (src: number, n: number) => number;
  };

/** One instance per Memory object (a worker has its own object for the same shared memory). */
const instances = new WeakMap<WebAssembly.Memory, Exports | null>();

function instance(memory: WebAssembly.Memory): Exports | null {
  if (!instances.has(memory)) {
    const mod = kernelModule(memory.buffer instanceof SharedArrayBuffer);
    instances.set(
      memory,
      mod === null ? null : (new WebAssembly.Instance(mod, { env: { mem: memory } }).exports as Exports),
    );
  }
  return instances.get(memory) ?? null;
}

/** Arena buffers -> their memory, which the compute workers are started with. */
const memories = new WeakMap<ArrayBuffer | SharedArrayBuffer, WebAssembly.Memory>();

/** The WebAssembly memory behind an Arena's buffer, if `buffer` is one. */
export function memoryOf(buffer: ArrayBuffer | SharedArrayBuffer): WebAssembly.Memory | undefined {
  return memories.get(buffer);
}

/** The SIMD float64 -> `d` encoder over `memory`, or null for F64 or where SIMD is unavailable. */
export function simdEncoder(memory: WebAssembly.Memory, d: WritableFloat): EncodeKernel | null {
  if (d === 'F64') return null;
  const e = instance(memory);
  return e === null ? null : d === 'BF16' ? e.toBf16 : d === 'F16' ? e.toF16 : e.toF32;
}

/** Zeroes `acc` (a view of `memory`). */
export function zeroIn(memory: WebAssembly.Memory, acc: Float64Array): void {
  const e = instance(memory);
  if (e === null || acc.buffer !== memory.buffer) acc.fill(0);
  else e.zero(acc.byteOffset, acc.length);
}

/** Exponent bits of the 16-bit formats: all ones is an infinity or a NaN. */
const EXPONENT16: Partial<Record<WritableFloat, number>> = { BF16: 0x7f80, F16: 0x7c00 };

/** Whether encoded `bytes` (a view of `memory`) hold an infinity or a NaN: SIMD for the bulk, JS for the rest. */
export function hasNonFiniteIn(memory: WebAssembly.Memory, d: WritableFloat, bytes: Uint8Array): boolean {
  const e = instance(memory);
  const size = bytesPerElement(d);
  const n = bytes.byteLength / size;
  if (e === null || d === 'F64' || bytes.buffer !== memory.buffer) return firstNonFinite(d, bytes) >= 0;
  const step = d === 'F32' ? 4 : 8;
  const bulk = n - (n % step);
  const hit =
    d === 'F32' ? e.nonFinite32(bytes.byteOffset, bulk) : e.nonFinite16(bytes.byteOffset, bulk, EXPONENT16[d]!);
  return hit !== 0 || firstNonFinite(d, bytes.subarray(bulk * size)) >= 0;
}

/**
 * Fixed-size memory that buffers are carved from, in order (8-byte aligned). It never grows, so
 * views into it stay valid for its lifetime. A `shared` arena's buffer is a SharedArrayBuffer
 * that a worker thread can see too.
 */
export class Arena {
  private used = 0;
  readonly memory: WebAssembly.Memory;
  readonly buffer: ArrayBuffer | SharedArrayBuffer;

  constructor(bytes: number, shared = false) {
    const pages = Math.ceil(bytes / 65536);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared });
    this.buffer = this.memory.buffer;
    memories.set(this.buffer, this.memory);
  }

  bytes(n: number): Uint8Array {
    const start = this.used;
    this.used = Math.ceil((start + n) / 8) * 8;
    if (this.used > this.buffer.byteLength) throw new RangeError('Arena: out of memory');
    return new Uint8Array(this.buffer, start, n);
  }

  f64(n: number): Float64Array {
    const b = this.bytes(n * 8);
    return new Float64Array(b.buffer, b.byteOffset, n);
  }

  /** `accumulate`, with SIMD where the dtype has a kernel and both buffers are in this arena. */
  accumulate(d: ReadableFloat, bytes: Uint8Array, acc: Float64Array, w: number): void {
    accumulateIn(this.memory, d, bytes, acc, w);
  }
}

/**
 * `accumulate` (acc += w * bytes as `d`), with the SIMD kernel where the dtype has one and both
 * buffers are views of `memory`; JS for the rest.
 */
export function accumulateIn(
  memory: WebAssembly.Memory,
  d: ReadableFloat,
  bytes: Uint8Array,
  acc: Float64Array,
  w: number,
): void {
  const e = instance(memory);
  const k = e === null ? undefined : d === 'F32' ? e.f32 : d === 'BF16' ? e.bf16 : d === 'F64' ? e.f64 : undefined;
  if (k === undefined || bytes.buffer !== memory.buffer || acc.buffer !== memory.buffer) {
    accumulate(d, bytes, acc, w);
    return;
  }
  const size = bytesPerElement(d);
  const n = bytes.byteLength / size;
  const step = d === 'BF16' ? 8 : d === 'F32' ? 4 : 2;
  const bulk = n - (n % step);
  k(bytes.byteOffset, acc.byteOffset, bulk, w);
  if (bulk < n) accumulate(d, bytes.subarray(bulk * size), acc.subarray(bulk), w);
}
