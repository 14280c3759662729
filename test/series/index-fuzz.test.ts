/**
 * Fuzzing sharded-index loading: random index JSON (hostile shard paths, odd values) and mutated
 * shards never throw anything but AvgCkptError, and never read a shard outside the folder.
 */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { loadCheckpoint } from '../../src/series/checkpoint.js';
import { f32, i64, put, stFile } from '../helpers/st-bytes.js';
import { tempDir } from '../helpers/st-bytes.js';
import { ownErrorAsync } from '../helpers/own-errors.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

const S1 = stFile([
  { name: 'a', dtype: 'F32', shape: [2], data: f32(1, 2) },
  { name: 'b', dtype: 'I64', shape: [], data: i64(3) },
]);
const S2 = stFile([{ name: 'c', dtype: 'F32', shape: [1], data: f32(4) }]);
// Outside every checkpoint folder: reading it would be an escape.
const OUTSIDE = put(
  join(tmp.dir, 'outside.safetensors'),
  stFile([{ name: 'a', dtype: 'F32', shape: [2], data: f32(9, 9) }]),
);

const shardName = fc.oneof(
  fc.constantFrom(
    's1.safetensors',
    's2.safetensors',
    'missing.safetensors',
    '../outside.safetensors',
    './s1.safetensors',
    'sub/../s1.safetensors',
    '..',
    '.',
    '',
    '/',
    OUTSIDE,
    `..${sep}outside.safetensors`,
    's1.safetensors/',
    'a\u0000b',
    '~/x',
    '%2e%2e/outside.safetensors',
    'sub/../../outside.safetensors',
  ),
  fc.string({ maxLength: 12 }),
);
const tensorName = fc.oneof(
  fc.constantFrom('a', 'b', 'c', 'zz', '__proto__', 'constructor', ''),
  fc.string({ maxLength: 6 }),
);

const index = fc.oneof(
  fc
    .record({
      metadata: fc.option(fc.record({ total_size: fc.oneof(fc.nat(), fc.anything()) }), { nil: undefined }),
      weight_map: fc.dictionary(
        tensorName,
        fc.oneof({ weight: 8, arbitrary: shardName }, { weight: 1, arbitrary: fc.anything() }),
        { maxKeys: 5 },
      ),
    })
    .map((o) => JSON.stringify(o)),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 30 }),
);

let k = 0;
describe('loadCheckpoint on fuzzed indexes', () => {
  it('only AvgCkptError; an accepted checkpoint reads only files inside its folder', async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(index, fc.boolean(), async (text, corruptS2) => {
        const d = join(tmp.dir, `ck${k++}`);
        mkdirSync(join(d, 'sub'), { recursive: true });
        put(join(d, 's1.safetensors'), S1);
        put(join(d, 's2.safetensors'), corruptS2 ? S2.subarray(0, S2.length - 1) : S2);
        put(join(d, 'model.safetensors.index.json'), text);
        let ck: Awaited<ReturnType<typeof loadCheckpoint>> | undefined;
        const r = await ownErrorAsync(loadCheckpoint(d).then((c) => (ck = c)));
        seen.add(r);
        if (r === 'ok' && ck !== undefined) {
          const root = resolve(d) + sep;
          for (const f of ck.files) expect(resolve(f).startsWith(root)).toBe(true);
        }
        rmSync(d, { recursive: true, force: true });
      }),
      {
        numRuns: 300,
        // always include one accepted index, one escape and one missing shard
        examples: [
          [JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' } }), false],
          [JSON.stringify({ weight_map: { a: '../outside.safetensors' } }), false],
          [JSON.stringify({ weight_map: { a: 'missing.safetensors' } }), false],
        ],
      },
    );
    // the run exercised both acceptance and the escape check, not just JSON errors
    expect(seen.has('ok')).toBe(true);
    expect(seen.has('shard-path-escapes')).toBe(true);
    expect(seen.has('missing-shard')).toBe(true);
  });

  it('mutated shard bytes behind a valid index: only AvgCkptError', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        async (edits, cut) => {
          const d = join(tmp.dir, `mk${k++}`);
          const b = S1.slice();
          for (const [i, v] of edits) b[i % b.length] = v;
          put(join(d, 's1.safetensors'), b.subarray(0, b.length - (cut % 4)));
          put(join(d, 's2.safetensors'), S2);
          put(
            join(d, 'model.safetensors.index.json'),
            JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' } }),
          );
          await ownErrorAsync(loadCheckpoint(d));
          rmSync(d, { recursive: true, force: true });
        },
      ),
      { numRuns: 200 },
    );
  });
});
