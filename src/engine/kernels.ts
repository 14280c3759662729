/**
 * WebAssembly SIMD accumulate kernels: acc[i] += w * x[i] two float64 lanes at a time. In plain
 * JS the bf16 loop runs at ~0.5 GB/s of input on one core, well under a cold disk read; SIMD
 * widens bf16 and f32 in registers and is several times faster. The arithmetic is the same IEEE
 * multiply then add, in the same order, so results are bit-identical to `accumulate`.
 *
 * The kernels can only see their own memory, so the engine allocates its read buffers and its
 * accumulator from an `Arena` over that memory: the data is never copied in.
 */
import { accumulate, type ReadableFloat } from '../io/safetensors/dtype.js';

// ---- a tiny assembler for the three kernels ----------------------------------------------------

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const i32Const = (n: number) => [0x41, ...sleb(n)];
const I32_ADD = [0x6a];
const I32_SUB = [0x6b];
const I32_LT_S = [0x48];
const simd = (op: number) => [0xfd, ...uleb(op)];
const load = (offset: number) => [...simd(0x00), 0, ...uleb(offset)];
const store = (offset: number) => [...simd(0x0b), 0, ...uleb(offset)];
/** Lanes 2,3 of an f32x4 moved to lanes 0,1 (for promote_low). */
const HIGH_HALF = [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const F64X2_SPLAT = simd(0x14);
const F64X2_PROMOTE_LOW_F32X4 = simd(0x5f);
const F64X2_ADD = simd(0xf0);
const F64X2_MUL = simd(0xf2);
const I32X4_EXTEND_LOW_I16X8_U = simd(0xa9);
const I32X4_EXTEND_HIGH_I16X8_U = simd(0xaa);
const I32X4_SHL = simd(0xab);

// params: 0 src, 1 dst, 2 n (elements), 3 w; locals: 4 w splat, 5 loaded input, 6 widened bf16
const SRC = 0, DST = 1, N = 2, W = 3, WV = 4, X = 5, Y = 6;

/** acc[dst + 16k .. +16] += wv * (f64x2 in local `v`), v128 at dst offset `off`. */
const madd = (v: number[], off: number) => [...get(DST), ...get(DST), ...load(off), ...v, ...get(WV), ...F64X2_MUL, ...F64X2_ADD, ...store(off)];
/** The four f64 lanes of an f32x4 local, added into acc at `off` and `off + 16`. */
const madd4 = (f32x4: number, off: number) => [
  ...madd([...get(f32x4), ...F64X2_PROMOTE_LOW_F32X4], off),
  ...madd([...get(f32x4), ...get(f32x4), ...HIGH_HALF, ...F64X2_PROMOTE_LOW_F32X4], off + 16),
];

/** Loops while n >= step: body, then src += srcBytes, dst += step * 8, n -= step. */
function kernel(step: number, srcBytes: number, body: number[]): number[] {
  const advance = (i: number, by: number) => [...get(i), ...i32Const(by), ...I32_ADD, ...set(i)];
  const code = [
    ...get(W), ...F64X2_SPLAT, ...set(WV),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(N), ...i32Const(step), ...I32_LT_S, 0x0d, 1, // br_if out
    ...body,
    ...advance(SRC, srcBytes), ...advance(DST, step * 8),
    ...get(N), ...i32Const(step), ...I32_SUB, ...set(N),
    0x0c, 0, 0x0b, 0x0b, // br loop, end loop, end block
    0x0b,
  ];
  const withLocals = [1, 3, V128, ...code];
  return [...uleb(withLocals.length), ...withLocals];
}

const f32Kernel = kernel(4, 16, [...get(SRC), ...load(0), ...set(X), ...madd4(X, 0)]);
const bf16Kernel = kernel(8, 16, [
  ...get(SRC), ...load(0), ...set(X),
  // bf16 is the top half of an f32: widen to 32 bits and shift into place
  ...get(X), ...I32X4_EXTEND_LOW_I16X8_U, ...i32Const(16), ...I32X4_SHL, ...set(Y), ...madd4(Y, 0),
  ...get(X), ...I32X4_EXTEND_HIGH_I16X8_U, ...i32Const(16), ...I32X4_SHL, ...set(Y), ...madd4(Y, 32),
]);
const f64Kernel = kernel(2, 16, madd([...get(SRC), ...load(0)], 0));

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const name = (s: string) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
const EXPORTS = ['f32', 'bf16', 'f64'] as const;

/** A shared memory can only be imported as shared (limits flag 3, with a maximum). */
const memoryLimits = (shared: boolean) => (shared ? [0x03, 1, ...uleb(65536)] : [0x00, 1]);

const moduleBytes = (shared: boolean) => new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [1, 0x60, 4, I32, I32, I32, F64, 0]), // type 0: (src, dst, n, w) -> ()
  ...section(2, [1, ...name('env'), ...name('mem'), 0x02, ...memoryLimits(shared)]), // import memory, min 1 page
  ...section(3, [3, 0, 0, 0]),
  ...section(7, [3, ...EXPORTS.flatMap((e, i) => [...name(e), 0x00, i])]),
  ...section(10, [3, ...f32Kernel, ...bf16Kernel, ...f64Kernel]),
]);

const compiled = new Map<boolean, WebAssembly.Module | null>();

/** The compiled kernels, or null where WebAssembly SIMD is unavailable. */
function kernelModule(shared: boolean): WebAssembly.Module | null {
  if (!compiled.has(shared)) {
    try {
      compiled.set(shared, new WebAssembly.Module(moduleBytes(shared)));
    } catch {
      compiled.set(shared, null);
    }
  }
  return compiled.get(shared) ?? null;
}

type Kernel = (src: number, dst: number, n: number, w: number) => void;

/**
 * Fixed-size memory that buffers are carved from, in order (8-byte aligned). It never grows, so
 * views into it stay valid for its lifetime. A `shared` arena's buffer is a SharedArrayBuffer
 * that a worker thread can see too.
 */
export class Arena {
  private used = 0;
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  private readonly kernels: Partial<Record<ReadableFloat, Kernel>> = {};

  constructor(bytes: number, shared = false) {
    const mod = kernelModule(shared);
    const pages = Math.ceil(bytes / 65536);
    const memory = new WebAssembly.Memory(shared ? { initial: pages, maximum: pages, shared } : { initial: pages });
    this.buffer = memory.buffer;
    if (mod !== null) {
      const e = new WebAssembly.Instance(mod, { env: { mem: memory } }).exports as Record<(typeof EXPORTS)[number], Kernel>;
      Object.assign(this.kernels, { F32: e.f32, BF16: e.bf16, F64: e.f64 });
    }
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
    const k = this.kernels[d];
    if (k === undefined || bytes.buffer !== this.buffer || acc.buffer !== this.buffer) {
      accumulate(d, bytes, acc, w);
      return;
    }
    const size = d === 'F64' ? 8 : d === 'F32' ? 4 : 2;
    const n = bytes.byteLength / size;
    const step = d === 'BF16' ? 8 : d === 'F32' ? 4 : 2;
    const bulk = n - (n % step);
    k(bytes.byteOffset, acc.byteOffset, bulk, w);
    if (bulk < n) accumulate(d, bytes.subarray(bulk * size), acc.subarray(bulk), w);
  }
}
