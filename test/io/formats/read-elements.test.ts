/**
 * readElements: any C-order range of a contiguous, strided (views, transposes, broadcasts) or
 * big-endian source equals what indexing the storage element by element gives.
 */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import { boxesOf, readElements } from '../../../src/io/formats/read-elements.js';
import type { TensorSource } from '../../../src/io/formats/tensor-source.js';
import { FilePool } from '../../../src/io/storage/file-pool.js';
import { put, tempDir } from '../../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);
let n = 0;

/** The expected bytes, element by element: C-order index -> multi-index -> storage offset. */
function expected(
  storage: Uint8Array,
  header: number,
  shape: number[],
  strides: number[],
  offset: number,
  size: number,
  start: number,
  count: number,
  bigEndian: boolean,
): Uint8Array {
  const out = new Uint8Array(count * size);
  for (let k = 0; k < count; k++) {
    let rest = start + k;
    let at = offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      at += (rest % shape[d]) * strides[d];
      rest = Math.floor(rest / shape[d]);
    }
    for (let b = 0; b < size; b++) out[k * size + b] = storage[header + at * size + (bigEndian ? size - 1 - b : b)];
  }
  return out;
}

const DTYPE_OF_SIZE = { 1: 'U8', 2: 'F16', 4: 'F32', 8: 'F64' } as const;

describe('readElements', () => {
  it('matches element-by-element indexing for random views, ranges and byte orders', async () => {
    const pool = new FilePool(4);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 0, maxLength: 4 }),
          fc.constantFrom(1, 2, 4, 8),
          fc.boolean(),
          fc.integer({ min: 0, max: 2 ** 30 }), // below 2^31: `>>` keeps it positive
          async (shape, size, bigEndian, seed) => {
            const numel = shape.reduce((a, b) => a * b, 1);
            // a random order of the dimensions in storage, a random padding per dimension,
            // sometimes a broadcast (stride 0) dimension
            const order = shape.map((_, i) => i).sort((a, b) => ((seed >> (a + b)) & 1) - 0.5);
            const strides = new Array<number>(shape.length).fill(0);
            let s = 1 + (seed % 3);
            for (const d of [...order].reverse()) {
              strides[d] = (seed >> d) % 7 === 0 ? 0 : s;
              s *= shape[d] + ((seed >> (2 * d)) % 2);
            }
            const offset = seed % 5;
            const span = offset + 1 + shape.reduce((a, len, d) => a + (len - 1) * strides[d], 0);
            const header = 3 + (seed % 11);
            const storage = Uint8Array.from({ length: header + span * size + 5 }, (_, i) => (i * 31 + seed) & 0xff);
            const file = put(join(tmp.dir, `s${n++}.bin`), storage);
            const src: TensorSource = {
              name: 't',
              dtype: DTYPE_OF_SIZE[size as 1 | 2 | 4 | 8],
              shape,
              file,
              position: header + offset * size,
              byteLength: numel * size,
              strides,
              bigEndian,
            };
            const start = numel === 0 ? 0 : seed % numel;
            const count = numel === 0 ? 0 : 1 + ((seed >> 3) % (numel - start));
            const into = new Uint8Array(count * size + 3).subarray(seed % 3); // aligned or not
            await readElements(pool, src, start, count, into);
            expect(into.subarray(0, count * size)).toEqual(
              expected(storage, header, shape, strides, offset, size, start, count, bigEndian),
            );
          },
        ),
        { numRuns: 300 },
      );
    } finally {
      await pool.close();
    }
  });

  it('a large transposed matrix is read in bounded pieces and comes out right', async () => {
    const [rows, cols] = [700, 1500]; // stored as [cols, rows]: element (r, c) at c * rows + r
    const storage = new Uint8Array(rows * cols * 4);
    const dv = new DataView(storage.buffer);
    for (let i = 0; i < rows * cols; i++) dv.setFloat32(4 * i, i, true);
    const file = put(join(tmp.dir, 'transposed.bin'), storage);
    const src: TensorSource = {
      name: 't',
      dtype: 'F32',
      shape: [rows, cols],
      file,
      position: 0,
      byteLength: storage.byteLength,
      strides: [1, rows],
    };
    const pool = new FilePool(1);
    try {
      const into = new Uint8Array(rows * cols * 4);
      const chunk = 123_457;
      for (let start = 0; start < rows * cols; start += chunk) {
        const count = Math.min(chunk, rows * cols - start);
        await readElements(pool, src, start, count, into.subarray(start * 4));
      }
      const got = new Float32Array(into.buffer);
      for (const [r, c] of [
        [0, 0],
        [0, 1],
        [1, 0],
        [699, 1499],
        [350, 17],
        [123, 1000],
      ])
        expect(got[r * cols + c]).toBe(c * rows + r);
      for (let i = 0; i < rows * cols; i += 997) expect(got[i]).toBe((i % cols) * rows + Math.floor(i / cols));
    } finally {
      await pool.close();
    }
  });

  it('a range outside the tensor is an internal error, not a short read', async () => {
    const file = put(join(tmp.dir, 'small.bin'), new Uint8Array(16));
    const src: TensorSource = { name: 't', dtype: 'F32', shape: [4], file, position: 0, byteLength: 16 };
    const pool = new FilePool(1);
    await expect(readElements(pool, src, 2, 3, new Uint8Array(12))).rejects.toMatchObject({ code: 'internal' });
    await pool.close();
  });
});

describe('boxesOf', () => {
  it('covers a C-order range exactly once, in order, with at most 2 x rank boxes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 }),
        fc.nat(),
        fc.nat(),
        (shape, x, y) => {
          const total = shape.reduce((a, b) => a * b, 1);
          const a = x % (total + 1);
          const b = a + (y % (total - a + 1));
          const seen: number[] = [];
          const boxes = [...boxesOf(shape, a, b)];
          for (const box of boxes) {
            const count = box.len.reduce((p, l) => p * l, 1);
            for (let k = 0; k < count; k++) {
              let rest = k;
              let lin = 0;
              let inner = 1;
              for (let d = shape.length - 1; d >= 0; d--) {
                lin += (box.lo[d] + (rest % box.len[d])) * inner;
                rest = Math.floor(rest / box.len[d]);
                inner *= shape[d];
              }
              seen.push(lin);
            }
          }
          expect(seen).toEqual(Array.from({ length: b - a }, (_, i) => a + i));
          expect(boxes.length).toBeLessThanOrEqual(Math.max(1, 2 * shape.length));
        },
      ),
      { numRuns: 500 },
    );
  });
});
