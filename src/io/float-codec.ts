/**
 * Exact conversions between stored float bits and float64: the one f16/bf16/fp8 codec.
 *
 * Decoding goes through lookup tables (every 16-bit or 8-bit pattern maps to its exact float64
 * value). Encoding rounds a float64 to nearest, ties to even, in one step: we round to float32
 * with round-to-odd first, which carries enough sticky information that a second rounding to
 * f16/bf16 is exact (no double-rounding error).
 */
import { bytesPerElement, type ReadableFloat, type WritableFloat } from './dtype.js';

// ---- decoding tables ---------------------------------------------------------------------------

function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

function bf16Value(h: number): number {
  const u = new Uint32Array([h << 16]);
  return new Float32Array(u.buffer)[0];
}

/** OCP FP8 E4M3FN: bias 7, no infinities, S.1111.111 is NaN. */
function e4m3Value(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 0x7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}

/** OCP FP8 E5M2: bias 15, IEEE-like infinities and NaNs. */
function e5m2Value(b: number): number {
  return f16Value(b << 8);
}

let f16Table: Float64Array | undefined;
let bf16Table: Float64Array | undefined;
let e4m3Table: Float64Array | undefined;
let e5m2Table: Float64Array | undefined;

function table(d: 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'): Float64Array {
  switch (d) {
    case 'F16':
      return (f16Table ??= Float64Array.from({ length: 65536 }, (_, i) => f16Value(i)));
    case 'BF16':
      return (bf16Table ??= Float64Array.from({ length: 65536 }, (_, i) => bf16Value(i)));
    case 'F8_E4M3':
      return (e4m3Table ??= Float64Array.from({ length: 256 }, (_, i) => e4m3Value(i)));
    case 'F8_E5M2':
      return (e5m2Table ??= Float64Array.from({ length: 256 }, (_, i) => e5m2Value(i)));
  }
}

/**
 * A typed view over `bytes` for dtype `d`. The engine allocates its read buffers aligned to 8,
 * so views are zero-copy; an unaligned buffer (rare) is copied once.
 */
function view(d: ReadableFloat, bytes: Uint8Array): Float64Array | Float32Array | Uint16Array | Uint8Array {
  const size = bytesPerElement(d);
  let b = bytes;
  if (b.byteOffset % size !== 0) b = new Uint8Array(b); // copy to an aligned buffer
  const n = b.byteLength / size;
  switch (d) {
    case 'F64':
      return new Float64Array(b.buffer, b.byteOffset, n);
    case 'F32':
      return new Float32Array(b.buffer, b.byteOffset, n);
    case 'F16':
    case 'BF16':
      return new Uint16Array(b.buffer, b.byteOffset, n);
    default:
      return b;
  }
}

// One loop per array type: a loop that sees several typed-array kinds goes polymorphic in V8
// and runs at half speed. Unrolling by 4 lets the f32 loop keep up with a cold disk read.

function accumulateF32(x: Float32Array, acc: Float64Array, w: number): void {
  const n = x.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    acc[i] += w * x[i];
    acc[i + 1] += w * x[i + 1];
    acc[i + 2] += w * x[i + 2];
    acc[i + 3] += w * x[i + 3];
  }
  for (; i < n; i++) acc[i] += w * x[i];
}

function accumulateF64(x: Float64Array, acc: Float64Array, w: number): void {
  const n = x.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    acc[i] += w * x[i];
    acc[i + 1] += w * x[i + 1];
    acc[i + 2] += w * x[i + 2];
    acc[i + 3] += w * x[i + 3];
  }
  for (; i < n; i++) acc[i] += w * x[i];
}

function accumulate16(x: Uint16Array, t: Float64Array, acc: Float64Array, w: number): void {
  for (let i = 0; i < x.length; i++) acc[i] += w * t[x[i]];
}

function accumulate8(x: Uint8Array, t: Float64Array, acc: Float64Array, w: number): void {
  for (let i = 0; i < x.length; i++) acc[i] += w * t[x[i]];
}

/** acc[i] += w * value(bytes[i]) for every element in `bytes` (little-endian). */
export function accumulate(d: ReadableFloat, bytes: Uint8Array, acc: Float64Array, w: number): void {
  const v = view(d, bytes);
  switch (d) {
    case 'F32':
      accumulateF32(v as Float32Array, acc, w);
      return;
    case 'F64':
      accumulateF64(v as Float64Array, acc, w);
      return;
    case 'F16':
    case 'BF16':
      accumulate16(v as Uint16Array, table(d), acc, w);
      return;
    default:
      accumulate8(v as Uint8Array, table(d), acc, w);
  }
}

/** out[i] = value(bytes[i]) (used for finding which input holds a non-finite value). */
export function decode(d: ReadableFloat, bytes: Uint8Array): Float64Array {
  const out = new Float64Array(bytes.byteLength / bytesPerElement(d));
  accumulate(d, bytes, out, 1);
  return out;
}

// ---- encoding ----------------------------------------------------------------------------------

const one = new Float32Array(1);
const oneBits = new Uint32Array(one.buffer);

/**
 * float64 -> float32 bits with round-to-odd: truncate toward zero, then set the lowest bit if
 * the value was inexact. Rounding this to any format with at least 2 fewer mantissa bits gives
 * the correctly rounded (ties-to-even) result of the original float64.
 */
function roundToOddF32(x: number): number {
  const y = Math.fround(x);
  one[0] = y;
  // If inexact (and not NaN): step the magnitude down when RNE rounded away from zero, then
  // set the low bit. Branch-free: the branches were taken at random and ran 4x slower.
  // biome-ignore lint/suspicious/noSelfCompare: x === x is the branch-free "not NaN"
  return ((oneBits[0] - +(Math.abs(y) > Math.abs(x))) | (+(y !== x) & +(x === x))) >>> 0;
}

/** float32 bits -> f16 bits, round to nearest even. */
function f32BitsToF16(a32: number): number {
  const sign = (a32 >>> 16) & 0x8000;
  const a = a32 & 0x7fffffff;
  if (a >= 0x7f800000) return sign | (a > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (a >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to infinity
  if (a < 0x38800000) {
    // f16 subnormal range (below 2^-14)
    if (a <= 0x33000000) return sign; // <= 2^-25: rounds to zero (tie goes to even 0)
    const e = a >>> 23;
    const m = (a & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  const t = a - 0x38000000;
  let r = t >>> 13;
  const rem = t & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

/** float32 bits -> bf16 bits, round to nearest even. */
function f32BitsToBf16(a32: number): number {
  if ((a32 & 0x7fffffff) > 0x7f800000) return ((a32 >>> 16) & 0x8000) | 0x7fc0;
  return ((a32 + 0x7fff + ((a32 >>> 16) & 1)) >>> 16) & 0xffff;
}

// One fused loop per format, element by element: no temporary array, and each call site sees
// one converter and inlines it.
function toF16(src: Float64Array, o: Uint16Array): void {
  for (let i = 0; i < src.length; i++) o[i] = f32BitsToF16(roundToOddF32(src[i]));
}

function toBf16(src: Float64Array, o: Uint16Array): void {
  for (let i = 0; i < src.length; i++) o[i] = f32BitsToBf16(roundToOddF32(src[i]));
}

/** Encodes float64 values as `d` (one rounding, to nearest, ties to even) into `out` bytes. */
export function encode(d: WritableFloat, src: Float64Array, out: Uint8Array): void {
  const n = src.length;
  if (out.byteLength < n * bytesPerElement(d)) throw new RangeError('encode: output too small');
  if (out.byteOffset % 8 !== 0) throw new RangeError('encode: output must be 8-byte aligned');
  switch (d) {
    case 'F64':
      new Float64Array(out.buffer, out.byteOffset, n).set(src);
      return;
    case 'F32':
      new Float32Array(out.buffer, out.byteOffset, n).set(src); // ToFloat32 is ties-to-even
      return;
    case 'F16':
    case 'BF16': {
      const o = new Uint16Array(out.buffer, out.byteOffset, n);
      if (d === 'F16') toF16(src, o);
      else toBf16(src, o);
      return;
    }
  }
}

/** The exact float64 value of one stored element (for tests and diagnostics). */
export function elementValue(d: ReadableFloat, bytes: Uint8Array, index: number): number {
  const size = bytesPerElement(d);
  return decode(d, bytes.subarray(index * size, (index + 1) * size))[0];
}

/** Index of the first infinite or NaN element of encoded `bytes`, or -1. */
export function firstNonFinite(d: WritableFloat, bytes: Uint8Array): number {
  const n = bytes.byteLength / bytesPerElement(d);
  if (d === 'F64' || d === 'F32') {
    const v =
      d === 'F64'
        ? new Float64Array(bytes.buffer, bytes.byteOffset, n)
        : new Float32Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) if (!Number.isFinite(v[i])) return i;
    return -1;
  }
  const exp = d === 'F16' ? 0x7c00 : 0x7f80; // all-ones exponent: infinity or NaN
  const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  for (let i = 0; i < n; i++) if ((h[i] & exp) === exp) return i;
  return -1;
}
