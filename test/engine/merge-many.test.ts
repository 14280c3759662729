/**
 * Several recipes in one pass (mergeMany): each output byte for byte what `merge` writes for its
 * recipe alone, on the F32 file run and the sharded F16 folder run; and on a failure no output
 * is left.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { merge, resolveMerge } from '../../src/commands/merge.js';
import { mergeMany } from '../../src/engine/merge.js';
import type { AvgCkptError } from '../../src/errors.js';
import { ema } from '../../src/recipes/ema.js';
import { lawa } from '../../src/recipes/lawa.js';
import { uniform } from '../../src/recipes/uniform.js';
import { listAll } from '../helpers/cli.js';
import { f32, put, stFile, tempDir } from '../helpers/st-bytes.js';

const MLP = 'fixtures/runs/digits-mlp/run';
const CNN = 'fixtures/runs/digits-cnn-fp16/run';
const tmp = tempDir('avg-ckpt-many-');
afterAll(tmp.cleanup);

/** Every file under `dir` (or the file itself), as path -> bytes. */
function contents(path: string): Map<string, Buffer> {
  if (!existsSync(path)) return new Map();
  if (!path.endsWith('/')) return new Map([['', readFileSync(path)]]);
  return new Map(
    readdirSync(path)
      .sort()
      .map((f) => [f, readFileSync(join(path, f))]),
  );
}

function expectSameBytes(a: string, b: string): void {
  const [x, y] = [contents(a), contents(b)];
  expect([...x.keys()]).toEqual([...y.keys()]);
  expect(x.size).toBeGreaterThan(0);
  for (const [f, bytes] of x) expect(Buffer.compare(bytes, y.get(f)!), `${a} ${f}`).toBe(0);
}

describe('mergeMany', () => {
  it('F32 run: lawa 4/8/16, ema 0.9 and a uniform window in one pass, each equal to merging it alone', async () => {
    const { selected } = await resolveMerge([MLP], {}, { method: 'uniform' });
    const steps = selected.map((c) => c.step);
    // each vector over the window `merge` selects for it alone (its steps go into the metadata)
    const late = steps.filter((s) => s >= 900);
    const vectors = [
      lawa(steps.slice(-4), 4),
      lawa(steps.slice(-8), 8),
      lawa(steps.slice(-16), 16),
      ema(steps, 0.9),
      uniform(late),
    ];
    const outs = vectors.map((v) => join(tmp.dir, 'many', `${v.name}.safetensors`));
    const results = await mergeMany(selected, vectors, outs, { dtype: 'BF16' });
    expect(results.map((r) => r.plan.vector.name)).toEqual(['lawa-4', 'lawa-8', 'lawa-16', 'ema-0.9', 'uniform']);
    const alone = [
      { method: { method: 'lawa' as const }, select: { last: 4 } },
      { method: { method: 'lawa' as const }, select: { last: 8 } },
      { method: { method: 'lawa' as const }, select: { last: 16 } },
      { method: { method: 'ema' as const, decay: 0.9 }, select: {} },
      { method: { method: 'uniform' as const }, select: { fromStep: 900 } },
    ];
    for (const [i, a] of alone.entries()) {
      const out = join(tmp.dir, 'alone', `${i}.safetensors`);
      await merge([MLP], { output: out, dtype: 'BF16', ...a });
      expectSameBytes(outs[i], out);
    }
  });

  it('sharded F16 folder run: folders with shards, index and config files equal to merging alone', async () => {
    const { selected } = await resolveMerge([CNN], {}, { method: 'uniform' });
    const steps = selected.map((c) => c.step);
    const vectors = [lawa(steps.slice(-2), 2), lawa(steps.slice(-6), 6), ema(steps, 0.5)];
    const outs = vectors.map((v) => join(tmp.dir, 'cnn-many', `${v.name}/`));
    await mergeMany(selected, vectors, outs);
    const alone = [
      { method: { method: 'lawa' as const }, select: { last: 2 } },
      { method: { method: 'lawa' as const }, select: { last: 6 } },
      { method: { method: 'ema' as const, decay: 0.5 }, select: {} },
    ];
    for (const [i, a] of alone.entries()) {
      const out = join(tmp.dir, 'cnn-alone', `${i}/`);
      await merge([CNN], { output: out, ...a });
      expectSameBytes(outs[i], out);
    }
    expect(readdirSync(outs[0])).toContain('model.safetensors.index.json');
  });

  it('a NaN that only one recipe weighs fails the whole command: no output, no temporary file', async () => {
    const run = join(tmp.dir, 'nan-run');
    for (const k of [1, 2, 3]) {
      put(
        join(run, `checkpoint-${k}`, 'model.safetensors'),
        stFile([{ name: 'w', dtype: 'F32', shape: [2], data: f32(k, k === 1 ? NaN : k) }]),
      );
    }
    const { selected } = await resolveMerge([run], {}, { method: 'uniform' });
    const steps = selected.map((c) => c.step);
    const out = join(tmp.dir, 'nan-out');
    const vectors = [lawa(steps.slice(-2), 2), lawa(steps, 3)]; // lawa-2 alone would succeed
    const err = await mergeMany(
      selected,
      vectors,
      vectors.map((v) => join(out, `${v.name}.safetensors`)),
    ).catch((e: unknown) => e);
    expect((err as AvgCkptError).oneLine()).toContain('checkpoint-1');
    expect(listAll(out)).toEqual([]);
  });

  it('refuses two recipes written to the same file before writing anything', async () => {
    const { selected } = await resolveMerge([MLP], { last: 4 }, { method: 'uniform' });
    const steps = selected.map((c) => c.step);
    const out = join(tmp.dir, 'same', 'x.safetensors');
    const err = await mergeMany(selected, [lawa(steps.slice(-2), 2), lawa(steps, 4)], [out, out]).catch(
      (e: unknown) => e,
    );
    expect((err as AvgCkptError).message).toContain('are the same file');
    expect(listAll(join(tmp.dir, 'same'))).toEqual([]);
  });
});
