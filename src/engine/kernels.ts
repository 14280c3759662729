/**
 * WebAssembly SIMD kernels. Accumulate: acc[i] += w * x[i] two float64 lanes at a time. In plain
 * JS the bf16 loop runs at ~0.5 GB/s of input on one core, well under a cold disk read; SIMD
 * widens bf16 and f32 in registers and is several times faster. The arithmetic is the same IEEE
 * multiply then add, in the same order, so results are bit-identical to `accumulate`. Encode to
 * bf16 and f16: the same steps as `encode` (round-to-odd to f32, then round-to-nearest-even),
 * four lanes at a time, bit-identical to it.
 *
 * The kernels can only see their own memory, so the engine allocates its read buffers and its
 * accumulator from an `Arena` over that memory: the data is never copied in.
 */
import { accumulate, type ReadableFloat, type WritableFloat } from '../io/safetensors/dtype.js';

// ---- a tiny assembler for the five kernels -----------------------------------------------------

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
const shuffle = (lanes: number[]) => [...simd(0x0d), ...lanes];
/** Lanes 2,3 of an f32x4 moved to lanes 0,1 (for promote_low). */
const HIGH_HALF = shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
const I32X4_SPLAT = simd(0x11);
const I32X4_LT_S = simd(0x39);
const I32X4_GT_S = simd(0x3b);
const F64X2_SPLAT = simd(0x14);
const F32X4_NE = simd(0x42);
const F64X2_NE = simd(0x48);
const F64X2_GT = simd(0x4a);
const V128_AND = simd(0x4e);
const V128_OR = simd(0x50);
const V128_BITSELECT = simd(0x52);
const F32X4_DEMOTE_F64X2_ZERO = simd(0x5e);
const F64X2_PROMOTE_LOW_F32X4 = simd(0x5f);
const F64X2_ABS = simd(0xec);
const F64X2_ADD = simd(0xf0);
const F64X2_MUL = simd(0xf2);
const I32X4_EXTEND_LOW_I16X8_U = simd(0xa9);
const I32X4_EXTEND_HIGH_I16X8_U = simd(0xaa);
const I32X4_SHL = simd(0xab);
const I32X4_SHR_U = simd(0xad);
const I32X4_ADD = simd(0xae);
const I32X4_SUB = simd(0xb1);
const F32X4_ADD = simd(0xe4);

// params: 0 src, 1 dst, 2 n (elements), 3 w; locals: 4 w splat, 5 loaded input, 6 widened bf16
const SRC = 0, DST = 1, N = 2, W = 3, WV = 4, X = 5, Y = 6;

/** acc[dst + 16k .. +16] += wv * (f64x2 in local `v`), v128 at dst offset `off`. */
const madd = (v: number[], off: number) => [...get(DST), ...get(DST), ...load(off), ...v, ...get(WV), ...F64X2_MUL, ...F64X2_ADD, ...store(off)];
/** The four f64 lanes of an f32x4 local, added into acc at `off` and `off + 16`. */
const madd4 = (f32x4: number, off: number) => [
  ...madd([...get(f32x4), ...F64X2_PROMOTE_LOW_F32X4], off),
  ...madd([...get(f32x4), ...get(f32x4), ...HIGH_HALF, ...F64X2_PROMOTE_LOW_F32X4], off + 16),
];

/**
 * `prologue`, then loops while n >= step: body, then src += srcBytes, dst += dstBytes, n -= step.
 * `v128Locals` v128 locals follow the parameters.
 */
function kernel(step: number, srcBytes: number, dstBytes: number, body: number[], prologue: number[], v128Locals: number): number[] {
  const advance = (i: number, by: number) => [...get(i), ...i32Const(by), ...I32_ADD, ...set(i)];
  const code = [
    ...prologue,
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(N), ...i32Const(step), ...I32_LT_S, 0x0d, 1, // br_if out
    ...body,
    ...advance(SRC, srcBytes), ...advance(DST, dstBytes),
    ...get(N), ...i32Const(step), ...I32_SUB, ...set(N),
    0x0c, 0, 0x0b, 0x0b, // br loop, end loop, end block
    0x0b,
  ];
  const withLocals = [1, v128Locals, V128, ...code];
  return [...uleb(withLocals.length), ...withLocals];
}

/** An accumulate kernel: `step` elements of `srcBytes` per iteration into float64 acc. */
const accKernel = (step: number, srcBytes: number, body: number[]) => kernel(step, srcBytes, step * 8, body, [...get(W), ...F64X2_SPLAT, ...set(WV)], 3);

const f32Kernel = accKernel(4, 16, [...get(SRC), ...load(0), ...set(X), ...madd4(X, 0)]);
const bf16Kernel = accKernel(8, 16, [
  ...get(SRC), ...load(0), ...set(X),
  // bf16 is the top half of an f32: widen to 32 bits and shift into place
  ...get(X), ...I32X4_EXTEND_LOW_I16X8_U, ...i32Const(16), ...I32X4_SHL, ...set(Y), ...madd4(Y, 0),
  ...get(X), ...I32X4_EXTEND_HIGH_I16X8_U, ...i32Const(16), ...I32X4_SHL, ...set(Y), ...madd4(Y, 32),
]);
const f64Kernel = accKernel(2, 16, madd([...get(SRC), ...load(0)], 0));

// The encoders, params: 0 src (f64), 1 dst (16-bit), 2 n; then v128 locals: constants, scratch.
const ONE = 3, RNE = 4, SIGN = 5, QNAN = 6, X0 = 7, X1 = 8, D0 = 9, D1 = 10, P0 = 11, P1 = 12, F = 13, B = 14;
const A = 15, T = 16, ABS = 17, BIAS = 18, HALF = 19, RNE13 = 20, MIN_NORMAL = 21, OVERFLOW = 22, EXP = 23, NAN16 = 24, INF16 = 25, SIGN16 = 26;
const splat32 = (c: number, local: number) => [...i32Const(c | 0), ...I32X4_SPLAT, ...set(local)];
/** The low 32 bits of each 64-bit lane of two vectors: two f64x2 masks as one i32x4 mask. */
const LOW_WORDS = shuffle([0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27]);
/** Both f64x2 (x0, x1) compared lane by lane to their promoted f32 (p0, p1), as an i32x4 mask. */
const mask4 = (cmp: (x: number, p: number) => number[]) => [...cmp(X0, P0), ...cmp(X1, P1), ...LOW_WORDS];

/**
 * Four float64 at `off` from src -> B, their f32 bits rounded to odd, as `encode`: F = RNE f32
 * of x; F - 1 where |F| > |x|, | 1 where F != x.
 */
const roundToOdd4 = (off: number) => [
  ...get(SRC), ...load(off), ...set(X0),
  ...get(SRC), ...load(off + 16), ...set(X1),
  ...get(X0), ...F32X4_DEMOTE_F64X2_ZERO, ...set(D0),
  ...get(X1), ...F32X4_DEMOTE_F64X2_ZERO, ...set(D1),
  ...get(D0), ...F64X2_PROMOTE_LOW_F32X4, ...set(P0),
  ...get(D1), ...F64X2_PROMOTE_LOW_F32X4, ...set(P1),
  ...get(D0), ...get(D1), ...shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]), ...set(F),
  ...get(F), ...mask4((x, p) => [...get(p), ...F64X2_ABS, ...get(x), ...F64X2_ABS, ...F64X2_GT]), ...I32X4_ADD, // -1 per true lane
  ...mask4((x, p) => [...get(p), ...get(x), ...F64X2_NE]), ...get(ONE), ...V128_AND, ...V128_OR, ...set(B),
];

/** Four float64 -> i32x4 whose high halves are their bf16 bits: (B + 0x7fff + ((B >> 16) & 1)). */
const bf16Of4 = (off: number) => [
  ...roundToOdd4(off),
  // bitselect(sign | 0x7fc00000, rounded, F is NaN): a NaN payload + 0x7fff could carry into the sign
  ...get(F), ...get(SIGN), ...V128_AND, ...get(QNAN), ...V128_OR,
  ...get(B), ...get(RNE), ...I32X4_ADD, ...get(B), ...i32Const(16), ...I32X4_SHR_U, ...get(ONE), ...V128_AND, ...I32X4_ADD,
  ...get(F), ...get(F), ...F32X4_NE, ...V128_BITSELECT,
];

/**
 * Four float64 -> i32x4 whose low halves are their f16 bits, as `f32BitsToF16` on B without
 * branches: A = |B|; NaN -> 0x7e00, >= 65520 -> 0x7c00, normal: T = A - (112 << 23),
 * (T + 0xfff + ((T >> 13) & 1)) >> 13; below 2^-14 the f32 add rounds for us: A + 0.5 has its
 * ulp at 2^-24, the f16 subnormal step, so it rounds A there to nearest even, and its bits minus
 * those of 0.5 are the f16 bits. Then | sign.
 */
const f16Of4 = (off: number) => [
  ...roundToOdd4(off),
  ...get(B), ...get(ABS), ...V128_AND, ...set(A),
  ...get(A), ...get(BIAS), ...I32X4_SUB, ...set(T),
  ...get(NAN16), ...get(INF16),
  ...get(A), ...get(HALF), ...F32X4_ADD, ...get(HALF), ...I32X4_SUB,
  ...get(T), ...get(RNE13), ...I32X4_ADD, ...get(T), ...i32Const(13), ...I32X4_SHR_U, ...get(ONE), ...V128_AND, ...I32X4_ADD, ...i32Const(13), ...I32X4_SHR_U,
  ...get(A), ...get(MIN_NORMAL), ...I32X4_LT_S, ...V128_BITSELECT,
  ...get(A), ...get(OVERFLOW), ...I32X4_GT_S, ...V128_BITSELECT,
  ...get(A), ...get(EXP), ...I32X4_GT_S, ...V128_BITSELECT,
  ...get(B), ...i32Const(16), ...I32X4_SHR_U, ...get(SIGN16), ...V128_AND, ...V128_OR,
];

// i16x8.narrow saturates (signed), so the 16-bit halves are picked out with shuffles instead.
const HIGH_HALVES = shuffle([2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31]);
const LOW_HALVES = shuffle([0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29]);
const encodeKernel = (of4: (off: number) => number[], halves: number[], constants: number[]) =>
  kernel(8, 64, 16, [...get(DST), ...of4(0), ...of4(32), ...halves, ...store(0)], [...splat32(1, ONE), ...constants], 24);
const toBf16Kernel = encodeKernel(bf16Of4, HIGH_HALVES, [...splat32(0x7fff, RNE), ...splat32(0x80000000, SIGN), ...splat32(0x7fc00000, QNAN)]);
const toF16Kernel = encodeKernel(f16Of4, LOW_HALVES, [
  ...splat32(0x7fffffff, ABS), ...splat32(0x38000000, BIAS), ...splat32(0x3f000000, HALF), ...splat32(0xfff, RNE13),
  ...splat32(0x38800000, MIN_NORMAL), ...splat32(0x477fefff, OVERFLOW), ...splat32(0x7f800000, EXP),
  ...splat32(0x7e00, NAN16), ...splat32(0x7c00, INF16), ...splat32(0x8000, SIGN16),
]);

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const name = (s: string) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
const EXPORTS = ['f32', 'bf16', 'f64', 'toBf16', 'toF16'] as const;

/** A shared memory can only be imported as shared (limits flag 3, with a maximum). */
const memoryLimits = (shared: boolean) => (shared ? [0x03, 1, ...uleb(65536)] : [0x00, 1]);

const moduleBytes = (shared: boolean) => new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // type 0: (src, dst, n, w) -> (), type 1: (src, dst, n) -> ()
  ...section(1, [2, 0x60, 4, I32, I32, I32, F64, 0, 0x60, 3, I32, I32, I32, 0]),
  ...section(2, [1, ...name('env'), ...name('mem'), 0x02, ...memoryLimits(shared)]), // import memory, min 1 page
  ...section(3, [5, 0, 0, 0, 1, 1]),
  ...section(7, [5, ...EXPORTS.flatMap((e, i) => [...name(e), 0x00, i])]),
  ...section(10, [5, ...f32Kernel, ...bf16Kernel, ...f64Kernel, ...toBf16Kernel, ...toF16Kernel]),
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
/** Encodes n float64 at byte offset src as bf16 or f16 at dst; n a multiple of 8. */
export type EncodeKernel = (src: number, dst: number, n: number) => void;
type Exports = Record<'f32' | 'bf16' | 'f64', Kernel> & Record<'toBf16' | 'toF16', EncodeKernel>;

/** One instance per Memory object; a worker gets a new object with each job (instantiating is cheap). */
const instances = new WeakMap<WebAssembly.Memory, Exports | null>();

function instance(memory: WebAssembly.Memory, shared: boolean): Exports | null {
  if (!instances.has(memory)) {
    const mod = kernelModule(shared);
    instances.set(memory, mod === null ? null : (new WebAssembly.Instance(mod, { env: { mem: memory } }).exports as Exports));
  }
  return instances.get(memory) ?? null;
}

/** Arena buffers -> their memory, which the encoder hands to its worker with each job. */
const memories = new WeakMap<ArrayBuffer | SharedArrayBuffer, WebAssembly.Memory>();

/** The WebAssembly memory behind an Arena's buffer, if `buffer` is one. */
export function memoryOf(buffer: ArrayBuffer | SharedArrayBuffer): WebAssembly.Memory | undefined {
  return memories.get(buffer);
}

/** The SIMD float64 -> `d` encoder over `memory`, or null for F32/F64 or where SIMD is unavailable. */
export function simdEncoder(memory: WebAssembly.Memory, d: WritableFloat): EncodeKernel | null {
  if (d !== 'BF16' && d !== 'F16') return null;
  const e = instance(memory, memory.buffer instanceof SharedArrayBuffer);
  return e === null ? null : d === 'BF16' ? e.toBf16 : e.toF16;
}

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
    const pages = Math.ceil(bytes / 65536);
    const memory = new WebAssembly.Memory(shared ? { initial: pages, maximum: pages, shared } : { initial: pages });
    this.buffer = memory.buffer;
    memories.set(this.buffer, memory);
    const e = instance(memory, shared);
    if (e !== null) Object.assign(this.kernels, { F32: e.f32, BF16: e.bf16, F64: e.f64 });
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
