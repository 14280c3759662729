/**
 * Per-row metrics from every engine: the same rows get the same losses and hits whichever engine
 * scored them, the totals are their sums, and the batch size does not change them. The
 * bootstrap and --holdout rest on these.
 */
import { describe, expect, it } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { Evaluator } from '../../src/eval/evaluator.js';
import type { PerExample } from '../../src/eval/metrics.js';
import { lawa } from '../../src/recipes/lawa.js';
import { discoverSeries } from '../../src/series/discover.js';

const RUN = 'fixtures/runs/digits-mlp';
const LAWA8 = (oracle as unknown as { cases: Record<string, { lawa_end: Record<string, { loss: number }> }> }).cases[
  'digits-mlp'
].lawa_end['8'].loss;

async function perRow(
  engine: 'mixture' | 'materialize' | 'fed',
  batchSize: number,
): Promise<{ per: PerExample; loss: number; accuracy: number }> {
  const checkpoints = [...(await discoverSeries([`${RUN}/run`])).checkpoints];
  const ev = await Evaluator.create({
    onnx: `${RUN}/model.onnx`,
    checkpoints,
    data: { dataDir: RUN, batchSize },
    engine,
    device: 'cpu',
  });
  try {
    const { metrics, perExample } = await ev.scoreRows(
      lawa(
        checkpoints.map((c) => c.step),
        8,
      ),
    );
    return { per: perExample, loss: metrics.loss, accuracy: metrics.accuracy };
  } finally {
    await ev.close();
  }
}

describe('per-example metrics', () => {
  it('agree across the three engines and batch sizes, row by row, and add up to the oracle total', async () => {
    const ref = await perRow('materialize', 500);
    expect(ref.per.loss.sum.length).toBe(500);
    expect([...ref.per.loss.count].every((c) => c === 1)).toBe(true);
    expect([...ref.per.accuracy.sum].every((c) => c === 0 || c === 1)).toBe(true);
    const sum = (x: Float64Array) => x.reduce((a, b) => a + b, 0);
    expect(Math.abs(sum(ref.per.loss.sum) / 500 - LAWA8)).toBeLessThan(1e-5);
    expect(sum(ref.per.accuracy.sum) / 500).toBeCloseTo(ref.accuracy, 12);
    for (const [engine, batch] of [
      ['mixture', 500],
      ['mixture', 64],
      ['fed', 100],
      ['materialize', 7],
    ] as const) {
      const other = await perRow(engine, batch);
      let worst = 0;
      for (let i = 0; i < 500; i++) worst = Math.max(worst, Math.abs(other.per.loss.sum[i] - ref.per.loss.sum[i]));
      expect(worst, `${engine} batch ${batch}`).toBeLessThan(1e-5);
      expect([...other.per.accuracy.sum], `${engine} batch ${batch}`).toEqual([...ref.per.accuracy.sum]);
    }
  });
});
