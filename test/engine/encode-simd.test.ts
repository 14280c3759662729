/**
 * The SIMD float64 -> bf16 / f16 / f32 encoders (kernels.wat, used by the merge through encodeIn)
 * give exactly the bytes of `encode`, and the SIMD finiteness check agrees with `firstNonFinite`: every bf16 and f16 value, the midpoints between neighbours and the float64s
 * next to them, float32 ties (double-rounding traps), NaNs of either sign and any payload,
 * infinities, overflow, subnormals, zeros, random bit patterns, and lengths that leave a JS tail.
 */
import { describe, expect, it } from 'vitest';
import { encodeIn } from '../../src/engine/compute.js';
import { Arena, hasNonFiniteIn, memoryOf, simdEncoder, zeroIn } from '../../src/engine/kernels.js';
import { encode, firstNonFinite } from '../../src/io/float-codec.js';

const bits = new BigUint64Array(1);
const f = new Float64Array(bits.buffer);
const fromBits = (b: bigint): number => ((bits[0] = b), f[0]);
const toBits = (x: number): bigint => ((f[0] = x), bits[0]);
/** The next float64 up / down (finite x). */
const nextUp = (x: number): number => (x === 0 ? 5e-324 : x > 0 ? fromBits(toBits(x) + 1n) : fromBits(toBits(x) - 1n));
const nextDown = (x: number): number => -nextUp(-x);
const bf16 = (h: number): number => new Float32Array(new Uint32Array([h << 16]).buffer)[0];
const f16 = (h: number): number => {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    m = h & 0x3ff;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
};

/** Every value of a 16-bit format, the midpoints to the next one up in magnitude, neighbours. */
function formatCases(value: (h: number) => number, maxFinite: number, overflowMid: number, inf: number): number[] {
  const v: number[] = [];
  for (let h = 0; h < 0x10000; h++) {
    const a = value(h);
    v.push(a);
    if (!Number.isFinite(a) || (h & 0x7fff) > maxFinite) continue;
    // the midpoint; past the largest finite value it is the overflow edge (rounds to Inf)
    const mid = (h & 0x7fff) === maxFinite ? Math.sign(1 / a) * overflowMid : (a + value(h + 1)) / 2;
    v.push(mid, nextUp(mid), nextDown(mid));
    if (a !== 0) v.push(nextUp(a), nextDown(a));
  }
  // values whose RNE float32 is itself a tie: x = tie * (1 +- tiny) rounds to the tie in f32
  for (let h = 0; h < inf; h += 7) {
    const a = value(h),
      b = value(h + 1);
    const mid = (a + b) / 2;
    for (const s of [1, -1])
      for (const d of [2 ** -24, 2 ** -25, 2 ** -26, 2 ** -30, 2 ** -40, 2 ** -52]) {
        v.push(s * mid * (1 + d), s * mid * (1 - d));
      }
  }
  return v;
}

function cases(): number[] {
  const v = [...formatCases(bf16, 0x7f7f, 2 ** 128 - 2 ** 119, 0x7f80), ...formatCases(f16, 0x7bff, 65520, 0x7c00)];
  // NaNs: both signs, quiet and signalling payloads
  for (const b of [
    0x7ff8000000000000n,
    0xfff8000000000000n,
    0x7ff0000000000001n,
    0xfff0000000000001n,
    0x7fffffffffffffffn,
    0xffffffffffffffffn,
    0x7ff4000000000000n,
    0x7ff00000ffffffffn,
    0xfff8000012345678n,
  ])
    v.push(fromBits(b));
  v.push(
    Infinity,
    -Infinity,
    0,
    -0,
    5e-324,
    -5e-324,
    2 ** -149,
    2 ** -150,
    2 ** -150 * 1.5,
    -(2 ** -126),
    2 ** -133,
    3 * 2 ** -134,
    1.7976931348623157e308,
    -1.7976931348623157e308,
  );
  for (const m of [2 ** -25, 2 ** -24, 3 * 2 ** -25, 2 ** -14 - 2 ** -25, 2 ** -14, 65504, 65519.99, 65520, 1e5])
    v.push(m, -m, nextUp(m), nextDown(m));
  for (const s of [1, -1])
    for (const m of [
      3.3895313892515355e38, 3.3961775292304e38, 3.402823466385289e38, 3.4028235677973366e38, 3.402823669209385e38,
    ])
      v.push(s * m, s * nextUp(m), s * nextDown(m));
  // random bit patterns (all exponents) and random values near 1 (the merge's usual range)
  let seed = 0x12345678n;
  const rnd = (): bigint => ((seed = (seed * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn), seed);
  for (let i = 0; i < 200_000; i++)
    v.push(fromBits(rnd()), fromBits((rnd() >> 12n) | 0x3f00000000000000n) * (i & 1 ? 1 : -1));
  for (let i = 0; i < 100_000; i++) v.push(fromBits((rnd() >> 16n) | 0x3e00000000000000n) * (i & 1 ? 1 : -1)); // around the f16 subnormals
  return v;
}

type Encoded = 'BF16' | 'F16' | 'F32';
const SIZE: Record<Encoded, number> = { BF16: 2, F16: 2, F32: 4 };

function simdEncode(dt: Encoded, values: Float64Array, shared: boolean): Uint8Array {
  const n = values.length;
  const arena = new Arena(n * 12 + 64, shared);
  const acc = arena.f64(n);
  acc.set(values);
  const out = arena.bytes(n * SIZE[dt]);
  encodeIn(arena.memory, dt, acc, out);
  // the SIMD check against the JS one, on the same bytes (overflow to infinity included)
  expect(hasNonFiniteIn(arena.memory, dt, out)).toBe(firstNonFinite(dt, jsEncode(dt, values)) >= 0);
  return out.slice();
}

function jsEncode(dt: Encoded, values: Float64Array): Uint8Array {
  const out = new Uint8Array(Math.ceil((values.length * SIZE[dt]) / 8) * 8);
  encode(dt, values, out);
  return out.subarray(0, values.length * SIZE[dt]);
}

/** Element i of encoded bytes, as an unsigned integer. */
function word(bytes: Uint8Array, dt: Encoded, i: number): number {
  const s = SIZE[dt];
  let w = 0;
  for (let b = s - 1; b >= 0; b--) w = w * 256 + bytes[i * s + b];
  return w;
}

describe('SIMD bf16, f16 and f32 encode', () => {
  const values = Float64Array.from(cases());

  it('is compiled and reachable from an Arena, plain or shared', () => {
    for (const shared of [false, true]) {
      const m = memoryOf(new Arena(1 << 16, shared).buffer)!;
      expect(simdEncoder(m, 'BF16')).not.toBeNull();
      expect(simdEncoder(m, 'F16')).not.toBeNull();
      expect(simdEncoder(m, 'F32')).not.toBeNull();
      expect(simdEncoder(m, 'F64')).toBeNull();
    }
  });

  for (const dt of ['BF16', 'F16', 'F32'] as const) {
    for (const shared of [false, true]) {
      it(`${dt}: matches encode byte for byte (${values.length} values, ${shared ? 'shared' : 'plain'} memory)`, () => {
        const got = simdEncode(dt, values, shared);
        const want = jsEncode(dt, values);
        const bad: string[] = [];
        for (let i = 0; i < values.length && bad.length < 10; i++) {
          const g = word(got, dt, i),
            w = word(want, dt, i);
          if (g !== w)
            bad.push(`${toBits(values[i]).toString(16)} (${values[i]}): simd ${g.toString(16)} js ${w.toString(16)}`);
        }
        expect(bad).toEqual([]);
        expect(Buffer.compare(got, want)).toBe(0);
      });
    }

    it(`${dt}: lengths that are not multiples of 8 (JS tail), short and long`, () => {
      for (const n of [0, 1, 7, 8, 9, 15, 17, 65535, 65537, 131079]) {
        const v = values.subarray(values.length - n);
        expect(Buffer.compare(simdEncode(dt, v, true), jsEncode(dt, v))).toBe(0);
      }
    });

    it(`${dt}: leaves the bytes after the output alone`, () => {
      const n = 13;
      const arena = new Arena(4096);
      const acc = arena.f64(n);
      acc.set(values.subarray(0, n));
      const out = arena.bytes(n * SIZE[dt] + 8 * SIZE[dt]);
      out.fill(0xab);
      simdEncoder(memoryOf(arena.buffer)!, dt)!(acc.byteOffset, out.byteOffset, 8);
      expect(Array.from(out.subarray(8 * SIZE[dt]))).toEqual(new Array(n * SIZE[dt]).fill(0xab));
    });
  }
});

describe('SIMD finiteness check and zeroing', () => {
  it('finds one infinity or NaN at any position of any length, in each format', () => {
    const bad: Record<Encoded, number[]> = {
      BF16: [0x7f80, 0xff80, 0x7fc0, 0x7f81],
      F16: [0x7c00, 0xfc00, 0x7e00, 0x7c01],
      F32: [0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001],
    };
    for (const dt of ['BF16', 'F16', 'F32'] as const) {
      const s = SIZE[dt];
      for (const n of [1, 3, 4, 7, 8, 9, 16, 17, 33]) {
        const arena = new Arena(4096, true);
        const out = arena.bytes(n * s);
        // the largest finite value of the format everywhere (all exponent bits but the last one)
        const big = dt === 'BF16' ? 0x7f7f : dt === 'F16' ? 0x7bff : 0x7f7fffff;
        const put = (i: number, v: number) => {
          for (let b = 0; b < s; b++) out[i * s + b] = (v / 256 ** b) & 0xff;
        };
        for (let i = 0; i < n; i++) put(i, big);
        expect(hasNonFiniteIn(arena.memory, dt, out)).toBe(false);
        for (let i = 0; i < n; i++) {
          put(i, bad[dt][i % 4]);
          expect(hasNonFiniteIn(arena.memory, dt, out), `${dt} n=${n} at ${i}`).toBe(true);
          put(i, big);
        }
      }
    }
  });

  it('zeroes exactly the accumulator, in plain and shared memory', () => {
    for (const shared of [false, true]) {
      const arena = new Arena(4096, shared);
      const all = arena.f64(40);
      all.fill(-1.5);
      zeroIn(arena.memory, all.subarray(3, 36));
      expect(Array.from(all)).toEqual([
        ...new Array(3).fill(-1.5),
        ...new Array(33).fill(0),
        ...new Array(4).fill(-1.5),
      ]);
      expect(Object.is(all[3], 0)).toBe(true);
    }
  });
});
