/**
 * The .npy/.npz readers: hand-written good and bad files, and fuzzing. Random and mutated inputs
 * must throw only AvgCkptError ('invalid-npy' or 'io'), allocate no more than the file allows, and
 * finish in bounded time.
 */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import { AvgCkptError } from '../../src/errors.js';
import { parseNpy, readNpy, readNpz } from '../../src/io/npy.js';
import { npyBytes, zipBytes } from '../helpers/npy-bytes.js';
import { f32, put, tempDir } from '../helpers/st-bytes.js';
import { ownError, ownErrorAsync } from '../helpers/own-errors.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

const GOOD = npyBytes('<f4', [2, 3], f32(1, 2, 3, 4, 5, 6));

describe('parseNpy on hand-written files', () => {
  it('reads float32 (2, 3), v1 and v2 headers', () => {
    for (const b of [GOOD, npyBytes('<f4', [2, 3], f32(1, 2, 3, 4, 5, 6), { version: 2 })]) {
      const a = parseNpy(b, 'x.npy');
      expect(a.dtype).toBe('float32');
      expect(a.shape).toEqual([2, 3]);
      expect(Array.from(a.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    }
  });
  it('scalars and empty arrays', () => {
    expect(parseNpy(npyBytes('<f8', [], new Uint8Array(new Float64Array([2.5]).buffer)), 'x').shape).toEqual([]);
    expect(parseNpy(npyBytes('<i8', [0, 4], new Uint8Array(0)), 'x').data.length).toBe(0);
  });
  const BAD: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['no magic', new Uint8Array(64)],
    [
      'version 9',
      (() => {
        const b = GOOD.slice();
        b[6] = 9;
        return b;
      })(),
    ],
    ['header past the end', GOOD.subarray(0, 40)],
    ['not a dict', npyBytes('', [1], f32(1), { rawHeader: 'hello' })],
    ['big-endian dtype', npyBytes('>f4', [1], f32(1))],
    ['object dtype', npyBytes('|O', [1], new Uint8Array(8))],
    ['fortran order', npyBytes('<f4', [2, 2], f32(1, 2, 3, 4), { fortran: true })],
    [
      'negative dim',
      npyBytes('<f4', [1], f32(1), { rawHeader: "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }" }),
    ],
    ['data truncated', GOOD.subarray(0, GOOD.length - 1)],
    ['shape overflows', npyBytes('<f8', [2 ** 40, 2 ** 40], new Uint8Array(0))],
  ];
  it.each(BAD)('%s: invalid-npy naming the file', (_l, b) => {
    let err: unknown;
    try {
      parseNpy(b, 'bad.npy');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AvgCkptError);
    expect((err as AvgCkptError).code).toBe('invalid-npy');
    expect((err as AvgCkptError).file).toBe('bad.npy');
  });
});

describe('readNpz on hand-written archives', () => {
  it('stored and deflated entries', async () => {
    const p = put(
      join(tmp.dir, 'ok.npz'),
      zipBytes([
        { name: 'x.npy', data: GOOD },
        { name: 'y.npy', data: GOOD, deflate: true },
      ]),
    );
    const m = await readNpz(p);
    expect([...m.keys()].sort()).toEqual(['x', 'y']);
    expect(Array.from(m.get('y')!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

// Regressions (fixed in 54457a0, found by the fuzz below): corrupt zip input escaped as a foreign
// error, so the CLI exited 70 ("internal error") instead of 1 with invalid-npy.
describe('readNpz: corrupt archives are invalid-npy, not internal errors', () => {
  const good = () =>
    zipBytes([
      { name: 'x.npy', data: GOOD },
      { name: 'y.npy', data: GOOD, deflate: true },
    ]);
  it('corrupt deflate stream (zlib throws "invalid distance too far back" etc.)', async () => {
    const z = zipBytes([{ name: 'y.npy', data: GOOD, deflate: true }]);
    // flip the bytes of the deflate body (after the 30-byte local header and the 5-byte name)
    for (let i = 35; i < 45; i++) z[i] ^= 0xff;
    expect(await ownErrorAsync(readNpz(put(join(tmp.dir, 'bad-deflate.npz'), z)))).toBe('invalid-npy');
  });
  it('a central-directory entry whose local-header offset is past the end (DataView RangeError)', async () => {
    const z = good();
    // the first central-directory record starts right after the local entries; its offset field is at +42
    const cd = z.findIndex((_, i) => z[i] === 0x50 && z[i + 1] === 0x4b && z[i + 2] === 1 && z[i + 3] === 2);
    z[cd + 42] = 0xff;
    z[cd + 43] = 0xff;
    z[cd + 44] = 0xff;
    z[cd + 45] = 0x0f;
    expect(await ownErrorAsync(readNpz(put(join(tmp.dir, 'bad-offset.npz'), z)))).toBe('invalid-npy');
  });
  it('an end-of-central-directory record pointing past the end', async () => {
    const z = good();
    const eocd = z.length - 22;
    z[eocd + 16] = 0xff;
    z[eocd + 17] = 0xff;
    z[eocd + 18] = 0xff;
    z[eocd + 19] = 0x0f;
    expect(await ownErrorAsync(readNpz(put(join(tmp.dir, 'bad-cd.npz'), z)))).toBe('invalid-npy');
  });
});

const mutatedNpy = fc.oneof(
  fc
    .record({ edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }) })
    .map(({ edits }) => {
      const b = GOOD.slice();
      for (const [i, v] of edits) b[i % b.length] = v;
      return b;
    }),
  fc.nat().map((cut) => GOOD.subarray(0, cut % (GOOD.length + 1))),
  fc
    .record({
      descr: fc.oneof(fc.constantFrom('<f4', '<f2', '|b1', '<i8', '>i8', '<c8', 'S3'), fc.string({ maxLength: 4 })),
      shape: fc.array(fc.oneof(fc.nat({ max: 5 }), fc.integer(), fc.constant(2 ** 53)), { maxLength: 3 }),
      len: fc.nat({ max: 64 }),
    })
    .map(({ descr, shape, len }) => npyBytes(descr, shape, new Uint8Array(len))),
  fc.string({ maxLength: 80 }).map((h) => npyBytes('<f4', [1], f32(1), { rawHeader: h })),
);

describe('fuzz', () => {
  it('parseNpy: random bytes and mutated files throw only AvgCkptError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 128 }), mutatedNpy), (b) => {
        ownError(() => parseNpy(b, 'f.npy'));
      }),
      { numRuns: 3000 },
    );
  });

  it('readNpy on files: only AvgCkptError', async () => {
    let k = 0;
    await fc.assert(
      fc.asyncProperty(mutatedNpy, async (b) => {
        await ownErrorAsync(readNpy(put(join(tmp.dir, `m${k++ % 20}.npy`), b)));
      }),
      { numRuns: 200 },
    );
  });

  it('readNpz: random and mutated archives throw only AvgCkptError, quickly', async () => {
    const good = zipBytes([
      { name: 'x.npy', data: GOOD },
      { name: 'y.npy', data: GOOD, deflate: true },
    ]);
    const mutatedZip = fc.oneof(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((edits) => {
        const b = good.slice();
        for (const [i, v] of edits) b[i % b.length] = v;
        return b;
      }),
      fc.nat().map((cut) => good.subarray(0, cut % (good.length + 1))),
      fc.uint8Array({ maxLength: 100 }),
    );
    let k = 0;
    let slowest = 0;
    await fc.assert(
      fc.asyncProperty(mutatedZip, async (b) => {
        const t0 = performance.now();
        await ownErrorAsync(readNpz(put(join(tmp.dir, `z${k++ % 20}.npz`), b)));
        slowest = Math.max(slowest, performance.now() - t0);
      }),
      { numRuns: 600 },
    );
    expect(slowest).toBeLessThan(2000);
  });
});
