/**
 * dtype conversions against independent references: exhaustive decode of every 16-bit and 8-bit
 * pattern, and round-to-nearest-even encoding checked at every midpoint between adjacent f16/bf16
 * values (and just above/below, including double-rounding traps that an f64 -> f32 -> f16 chain
 * gets wrong). Expected values come from simple float64 arithmetic written here.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DTYPES,
  dtypeBits,
  isDType,
  isFloatKind,
  isIntegerKind,
  isReadableFloat,
  isWritableFloat,
  type WritableFloat,
} from '../../src/io/dtype.js';
import { accumulate, decode, encode, elementValue } from '../../src/io/float-codec.js';

/** Value of a minifloat bit pattern, from the definition. */
function minifloat(bits: number, ebits: number, mbits: number, bias: number, kind: 'ieee' | 'fn'): number {
  const sign = (bits >> (ebits + mbits)) & 1 ? -1 : 1;
  const e = (bits >> mbits) & ((1 << ebits) - 1);
  const m = bits & ((1 << mbits) - 1);
  const emax = (1 << ebits) - 1;
  if (kind === 'ieee' && e === emax) return m === 0 ? sign * Infinity : NaN;
  if (kind === 'fn' && e === emax && m === (1 << mbits) - 1) return NaN;
  // subnormal: 0.m * 2^(1-bias); normal: 1.m * 2^(e-bias); computed as integer * power of two
  const significand = e === 0 ? m : m + (1 << mbits);
  const exp = (e === 0 ? 1 : e) - bias - mbits;
  return sign * significand * 2 ** exp;
}
const refF16 = (h: number) => minifloat(h, 5, 10, 15, 'ieee');
const refBf16 = (h: number) => minifloat(h, 8, 7, 127, 'ieee');
const refE4m3 = (b: number) => minifloat(b, 4, 3, 7, 'fn');
const refE5m2 = (b: number) => minifloat(b, 5, 2, 15, 'ieee');

/** The 16-bit patterns of all values, as little-endian bytes. */
function allPatterns16(): Uint8Array {
  const out = new Uint8Array(65536 * 2);
  for (let i = 0; i < 65536; i++) {
    out[2 * i] = i & 0xff;
    out[2 * i + 1] = i >> 8;
  }
  return out;
}

/**
 * Equal values, NaN equal to NaN. The sign of zero is not compared: `decode` sums into a zeroed
 * buffer (0 + -0 = +0), which is harmless for averaging; encode is checked with signed zeros.
 */
function same(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

function encodeAll(d: WritableFloat, xs: number[]): number[] {
  const out = new Uint8Array(xs.length * 2);
  encode(d, Float64Array.from(xs), out);
  const r: number[] = [];
  for (let i = 0; i < xs.length; i++) r.push(out[2 * i] | (out[2 * i + 1] << 8));
  return r;
}

function nextUp(x: number): number {
  const b = new BigInt64Array(new Float64Array([x]).buffer);
  b[0] += x >= 0 ? 1n : -1n;
  return new Float64Array(b.buffer)[0];
}
function nextDown(x: number): number {
  return -nextUp(-x);
}

describe('decode is exact for all 65536 F16 and BF16 patterns', () => {
  for (const [d, ref] of [
    ['F16', refF16],
    ['BF16', refBf16],
  ] as const) {
    it(d, () => {
      const got = decode(d, allPatterns16());
      let bad = 0;
      for (let i = 0; i < 65536; i++) if (!same(got[i], ref(i))) bad++;
      expect(bad).toBe(0);
      // spot checks of well-known values
      expect(got[0x3c00]).toBe(d === 'F16' ? 1 : ref(0x3c00));
    });
  }
  it('known F16 constants', () => {
    const v = (h: number) => elementValue('F16', new Uint8Array([h & 0xff, h >> 8]), 0);
    expect(v(0x3c00)).toBe(1);
    expect(v(0x7bff)).toBe(65504);
    expect(v(0x0001)).toBe(2 ** -24);
    expect(v(0x0400)).toBe(2 ** -14);
    expect(v(0xc000)).toBe(-2);
    expect(v(0x7c00)).toBe(Infinity);
    expect(v(0xfc00)).toBe(-Infinity);
    expect(v(0x8000)).toBe(0);
    expect(v(0x7e00)).toBeNaN();
  });
  it('known BF16 constants', () => {
    const v = (h: number) => elementValue('BF16', new Uint8Array([h & 0xff, h >> 8]), 0);
    expect(v(0x3f80)).toBe(1);
    expect(v(0x4049)).toBe(3.140625);
    expect(v(0x7f7f)).toBe((2 - 2 ** -7) * 2 ** 127);
    expect(v(0x0001)).toBe(2 ** -133);
    expect(v(0x7f80)).toBe(Infinity);
    expect(v(0x7fc0)).toBeNaN();
  });
});

describe('F8 decode tables', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  it('F8_E4M3 (FN: no infinities, only S.1111.111 is NaN) matches the definition for all 256 patterns', () => {
    const got = decode('F8_E4M3', all);
    for (let i = 0; i < 256; i++) expect(same(got[i], refE4m3(i)), `pattern ${i}`).toBe(true);
    expect(got[0x7e]).toBe(448);
    expect(got[0x38]).toBe(1);
    expect(got[0x01]).toBe(2 ** -9);
    expect(got[0x78]).toBe(256); // e = 15 is a normal exponent in E4M3FN
    expect(got[0x7f]).toBeNaN();
    expect(got[0xff]).toBeNaN();
    expect([...got].filter(Number.isNaN).length).toBe(2);
    expect([...got].some((x) => !Number.isFinite(x) && !Number.isNaN(x))).toBe(false);
  });
  it('F8_E5M2 (IEEE-like) matches the definition for all 256 patterns', () => {
    const got = decode('F8_E5M2', all);
    for (let i = 0; i < 256; i++) expect(same(got[i], refE5m2(i)), `pattern ${i}`).toBe(true);
    expect(got[0x7b]).toBe(57344);
    expect(got[0x3c]).toBe(1);
    expect(got[0x01]).toBe(2 ** -16);
    expect(got[0x7c]).toBe(Infinity);
    expect(got[0xfc]).toBe(-Infinity);
    expect([...got].filter(Number.isNaN).length).toBe(6);
  });
});

/**
 * For every pair of adjacent positive finite values (a, b) of a 16-bit format (with the step past
 * the largest finite value going to infinity, whose virtual value is 2^(emax+1)), the test values
 * and the pattern each must encode to.
 */
function midpointCases(
  ref: (h: number) => number,
  maxFinite: number,
  infPattern: number,
  mbits: number,
  f32Bits: number,
) {
  const xs: number[] = [];
  const want: number[] = [];
  const traps: number[] = [];
  const add = (x: number, p: number) => {
    xs.push(x, -x);
    want.push(p, p | 0x8000);
  };
  for (let p = 0; p <= maxFinite; p++) {
    const a = ref(p);
    const b = p === maxFinite ? 2 * 2 ** Math.floor(Math.log2(a)) : ref(p + 1);
    const q = p === maxFinite ? infPattern : p + 1;
    const u = b - a;
    const m = (a + b) / 2; // exact: one more bit than the format
    add(a, p);
    add(m, p % 2 === 0 ? p : q); // tie: the even pattern
    add(nextUp(m), q);
    add(nextDown(m), p);
    // a hair off the midpoint: rounding to float32 first lands exactly on the midpoint
    // (a double-rounding trap); the correct answer is still decided by the side.
    const hair = u * 2 ** -(f32Bits - mbits + 2);
    add(m + hair, q);
    add(m - hair, p);
    traps.push(m + hair, m - hair);
    add(a + u / 4, p);
    add(b - u / 4, q);
  }
  return { xs, want, traps };
}

describe('encode rounds float64 to nearest, ties to even, in one rounding', () => {
  const cases = {
    F16: midpointCases(refF16, 0x7bff, 0x7c00, 10, 23),
    BF16: midpointCases(refBf16, 0x7f7f, 0x7f80, 7, 23),
  } as const;

  for (const d of ['F16', 'BF16'] as const) {
    it(`${d}: every midpoint, its neighbours in float64, and values a quarter step away`, () => {
      const { xs, want } = cases[d];
      const got = encodeAll(d, xs);
      const wrong: string[] = [];
      for (let i = 0; i < xs.length && wrong.length < 5; i++) {
        if (got[i] !== want[i]) wrong.push(`${xs[i]} -> 0x${got[i].toString(16)}, want 0x${want[i].toString(16)}`);
      }
      expect(wrong).toEqual([]);
      expect(xs.length).toBeGreaterThan(16 * (d === 'F16' ? 0x7bff : 0x7f7f));
    });

    it(`${d}: the double-rounding traps really are traps (float32 rounds them onto a tie)`, () => {
      const { traps } = cases[d];
      // For most of them, float32 rounding lands exactly on the midpoint: naive f64->f32->f16 would be wrong.
      const onTie = traps.filter((x) => Math.fround(x) !== x).length;
      expect(onTie).toBeGreaterThan(traps.length / 2);
    });
  }

  it('every finite F16 and BF16 pattern encodes back to itself (signed zeros included)', () => {
    for (const [d, ref] of [
      ['F16', refF16],
      ['BF16', refBf16],
    ] as const) {
      const ps: number[] = [];
      for (let p = 0; p < 65536; p++) if (Number.isFinite(ref(p))) ps.push(p);
      const got = encodeAll(d, ps.map(ref));
      expect(got.filter((g, i) => g !== ps[i]).length).toBe(0);
    }
  });

  it('infinities, NaN, overflow and underflow', () => {
    const xs = [
      Infinity,
      -Infinity,
      NaN,
      1e300,
      -1e300,
      65520,
      65519.99,
      1e-300,
      -1e-300,
      2 ** -25,
      2 ** -25 * (1 + 2 ** -40),
      3e38,
      3.5e38,
    ];
    const f16 = encodeAll('F16', xs);
    expect(f16.slice(0, 2)).toEqual([0x7c00, 0xfc00]);
    expect(f16[2] & 0x7c00).toBe(0x7c00);
    expect(f16[2] & 0x03ff).not.toBe(0);
    expect(f16.slice(3)).toEqual([0x7c00, 0xfc00, 0x7c00, 0x7bff, 0x0000, 0x8000, 0x0000, 0x0001, 0x7c00, 0x7c00]);
    const bf = encodeAll('BF16', xs);
    expect(bf.slice(0, 2)).toEqual([0x7f80, 0xff80]);
    expect(bf[2] & 0x7f80).toBe(0x7f80);
    expect(bf[2] & 0x007f).not.toBe(0);
    // 3e38 < bf16 max + half step (3.3895e38 + ...), 3.5e38 above float32 max: infinity
    expect(bf[3]).toBe(0x7f80);
    expect(bf[4]).toBe(0xff80);
    expect(bf[11]).toBe(0x7f62);
    expect(bf[12]).toBe(0x7f80);
  });

  it('F32: ties to even at random midpoints between adjacent floats', () => {
    const f32Of = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x7f7ffffe }), fc.boolean(), (p, neg) => {
        const a = f32Of(p);
        const b = f32Of(p + 1);
        const m = (a + b) / 2;
        const s = neg ? -1 : 1;
        const xs = [m, nextUp(m), nextDown(m), a].map((x) => s * x);
        const out = new Uint8Array(16);
        encode('F32', Float64Array.from(xs), out);
        const got = Array.from(new Uint32Array(out.buffer)).map((x) => x & 0x7fffffff);
        return got[0] === (p % 2 === 0 ? p : p + 1) && got[1] === p + 1 && got[2] === p && got[3] === p;
      }),
      { numRuns: 2000 },
    );
  });

  it('F64 is a copy', () => {
    const xs = Float64Array.from([Math.PI, -0, NaN, 1e-310]);
    const out = new Uint8Array(32);
    encode('F64', xs, out);
    const back = new Float64Array(out.buffer);
    expect(back[0]).toBe(Math.PI);
    expect(Object.is(back[1], -0)).toBe(true);
    expect(back[2]).toBeNaN();
    expect(back[3]).toBe(1e-310);
  });

  it('refuses a too-small or unaligned output buffer', () => {
    expect(() => encode('F16', new Float64Array(4), new Uint8Array(6))).toThrow(RangeError);
    expect(() => encode('F32', new Float64Array(1), new Uint8Array(16).subarray(4))).toThrow(RangeError);
  });
});

describe('accumulate', () => {
  it('adds w * value for F32, F16, BF16, F64, F8 (aligned and unaligned inputs)', () => {
    const acc = new Float64Array([1, 1]);
    accumulate('F16', new Uint8Array([0x00, 0x3c, 0x00, 0xc0]), acc, 0.5); // [1, -2]
    expect(Array.from(acc)).toEqual([1.5, 0]);
    const buf = new Uint8Array(9);
    buf.set(new Uint8Array(new Float32Array([2, 4]).buffer), 1);
    accumulate('F32', buf.subarray(1), acc, 0.25);
    expect(Array.from(acc)).toEqual([2, 1]);
    accumulate('BF16', new Uint8Array([0x80, 0x3f, 0x80, 0xbf]), acc, 2); // [1, -1]
    expect(Array.from(acc)).toEqual([4, -1]);
    accumulate('F8_E4M3', new Uint8Array([0x38, 0x7e]), acc, 1); // [1, 448]
    expect(Array.from(acc)).toEqual([5, 447]);
    const b64 = new Uint8Array(17);
    b64.set(new Uint8Array(new Float64Array([0.1, 0.2]).buffer), 1);
    accumulate('F64', b64.subarray(1), acc, 10);
    expect(Array.from(acc)).toEqual([5 + 10 * 0.1, 447 + 10 * 0.2]);
  });
});

describe('dtype tables', () => {
  it('bits per element', () => {
    const want: Record<string, number> = {
      BOOL: 8,
      U8: 8,
      I8: 8,
      I16: 16,
      U16: 16,
      F16: 16,
      BF16: 16,
      I32: 32,
      U32: 32,
      F32: 32,
      F64: 64,
      I64: 64,
      U64: 64,
      C64: 64,
      F8_E4M3: 8,
      F8_E5M2: 8,
      F8_E8M0: 8,
      F8_E4M3FNUZ: 8,
      F8_E5M2FNUZ: 8,
      F4: 4,
      F6_E2M3: 6,
      F6_E3M2: 6,
    };
    expect([...DTYPES].sort()).toEqual(Object.keys(want).sort());
    for (const d of DTYPES) expect(dtypeBits(d)).toBe(want[d]);
  });
  it('kinds', () => {
    expect(isDType('F32')).toBe(true);
    expect(isDType('f32')).toBe(false);
    expect(isDType(32)).toBe(false);
    for (const d of ['BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64'] as const)
      expect(isIntegerKind(d)).toBe(true);
    for (const d of ['F16', 'BF16', 'F32', 'F64', 'C64', 'F8_E4M3', 'F4'] as const) expect(isFloatKind(d)).toBe(true);
    expect(DTYPES.filter(isReadableFloat).sort()).toEqual(['BF16', 'F16', 'F32', 'F64', 'F8_E4M3', 'F8_E5M2']);
    expect(DTYPES.filter(isWritableFloat).sort()).toEqual(['BF16', 'F16', 'F32', 'F64']);
  });
});
