/**
 * A shared Arena (the memory the compute workers see) runs the same SIMD kernels, over a
 * SharedArrayBuffer, with the same bits as the plain `accumulate`.
 */
import { describe, expect, it } from 'vitest';
import { Arena, simdEncoder } from '../../src/engine/kernels.js';
import type { ReadableFloat } from '../../src/io/dtype.js';
import { accumulate } from '../../src/io/float-codec.js';

describe('shared Arena', () => {
  it('is a SharedArrayBuffer and stays full size', () => {
    const a = new Arena(100_000, true);
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(a.buffer.byteLength).toBe(131_072);
    expect(() => a.bytes(131_073)).toThrow(RangeError);
    // the kernels compiled for a shared memory import (not the JS fallback)
    expect(simdEncoder(a.memory, 'BF16')).not.toBeNull();
  });

  for (const [d, size] of [
    ['BF16', 2],
    ['F32', 4],
    ['F64', 8],
  ] as const) {
    it(`${d}: the kernel over shared memory matches accumulate bit for bit`, () => {
      const n = 1003; // odd: the tail runs in JS
      const arena = new Arena(n * (size + 16) + 64, true);
      const src = arena.bytes(n * size);
      for (let i = 0; i < src.length; i++) src[i] = (i * 2654435761) >>> 24;
      if (d !== 'BF16') {
        // keep f32/f64 patterns finite so the comparison is not all NaN
        const view =
          d === 'F32'
            ? new Float32Array(src.buffer, src.byteOffset, n)
            : new Float64Array(src.buffer, src.byteOffset, n);
        for (let i = 0; i < n; i++) view[i] = Math.sin(i) * 10 ** ((i % 9) - 4);
      }
      const acc = arena.f64(n);
      acc.fill(0.25);
      arena.accumulate(d as ReadableFloat, src, acc, 0.3);
      const want = new Float64Array(n).fill(0.25);
      accumulate(d as ReadableFloat, new Uint8Array(src), want, 0.3);
      expect(Array.from(acc)).toEqual(Array.from(want));
    });
  }
});
