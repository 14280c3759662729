/**
 * The SIMD kernels must give exactly what the plain `accumulate` gives: every bf16 pattern,
 * f32/f64 specials, odd lengths (the tail runs in JS), and buffers outside the arena.
 */
import { describe, expect, it } from 'vitest';
import { Arena } from '../../src/engine/kernels.js';
import type { ReadableFloat } from '../../src/io/dtype.js';
import { accumulate } from '../../src/io/float-codec.js';

function randomAcc(n: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, (_, i) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return (x / 2 ** 32 - 0.5) * (i % 5 === 0 ? 1e300 : 1);
  });
}

function sameBits(a: Float64Array, b: Float64Array): string[] {
  const wrong: string[] = [];
  for (let i = 0; i < a.length && wrong.length < 5; i++) {
    if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) wrong.push(`${i}: ${a[i]} != ${b[i]}`);
  }
  return wrong;
}

function compare(d: ReadableFloat, bytes: Uint8Array, size: number): void {
  const n = bytes.byteLength / size;
  const arena = new Arena(bytes.byteLength + n * 8 + 16);
  const src = arena.bytes(bytes.byteLength);
  src.set(bytes);
  const acc = arena.f64(n);
  const start = randomAcc(n, n);
  acc.set(start);
  const ref = Float64Array.from(start);
  for (const w of [0.125, 1 / 3, -2.5e-7, 1e300]) {
    arena.accumulate(d, src, acc, w);
    accumulate(d, bytes, ref, w);
  }
  expect(sameBits(acc, ref)).toEqual([]);
}

describe('SIMD accumulate equals the plain loop', () => {
  it('BF16: all 65536 patterns, odd length', () => {
    const x = new Uint16Array(65536 + 7).map((_, i) => i & 0xffff);
    compare('BF16', new Uint8Array(x.buffer), 2);
  });
  it('F32: random bits, infinities, NaN, subnormals, -0, odd length', () => {
    const x = new Uint32Array(100_003).map((_, i) => Math.imul(i + 1, 2654435761) >>> 0);
    x.set([0x7f800000, 0xff800000, 0x7fc00001, 1, 0x80000000, 0x007fffff]);
    compare('F32', new Uint8Array(x.buffer), 4);
  });
  it('F64: random values and specials, odd length', () => {
    const x = Float64Array.from(randomAcc(10_001, 7));
    x.set([Infinity, -Infinity, NaN, 5e-324, -0]);
    compare('F64', new Uint8Array(x.buffer), 8);
  });
  it('F16 (no kernel) and buffers outside the arena take the plain path', () => {
    const arena = new Arena(1 << 16);
    const bytes = new Uint8Array(new Uint16Array([0x3c00, 0x4000, 0xc000]).buffer);
    const acc = new Float64Array(3);
    arena.accumulate('F16', arena.bytes(6).fill(0), arena.f64(3), 1);
    arena.accumulate('F32', new Uint8Array(new Float32Array([1, 2, 3]).buffer), acc, 2);
    expect([...acc]).toEqual([2, 4, 6]);
    arena.accumulate('F16', bytes, acc, 1);
    expect([...acc]).toEqual([3, 6, 4]);
  });
  it('an arena refuses to hand out more than it holds', () => {
    const arena = new Arena(65536);
    arena.bytes(65536);
    expect(() => arena.bytes(1)).toThrow(RangeError);
  });
});
