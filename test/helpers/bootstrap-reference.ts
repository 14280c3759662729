/**
 * The paired bootstrap written out plainly, for tests to check src/analysis/bootstrap.ts against:
 * mean(a - b) over `rows` drawn with replacement by the same mulberry32 draws, the 2.5% and 97.5%
 * quantiles interpolated as NumPy does. And per-row losses of any average of a bundled run from
 * the materialize engine (the CLI scores with the mixture), for it to resample.
 */
import { mulberry32 } from '../../src/analysis/bootstrap.js';
import { join } from 'node:path';
import { Evaluator } from '../../src/eval/evaluator.js';
import type { PerExample } from '../../src/eval/metrics.js';
import { raw } from '../../src/recipes/lawa.js';
import { weightVector } from '../../src/recipes/weight-vector.js';
import { discoverSeries } from '../../src/series/discover.js';

/** The 95% paired bootstrap interval of mean(a - b) over `rows`. */
export function plainBootstrap(
  a: Float64Array,
  b: Float64Array,
  rows: number[],
  seed: number,
  resamples: number,
): [number, number] {
  const random = mulberry32(seed);
  const d: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let sa = 0;
    let sb = 0;
    for (let j = 0; j < rows.length; j++) {
      const i = rows[Math.floor(random() * rows.length)];
      sa += a[i];
      sb += b[i];
    }
    d.push(sa / rows.length - sb / rows.length);
  }
  d.sort((x, y) => x - y);
  const q = (p: number) => {
    const h = (d.length - 1) * p;
    const lo = Math.floor(h);
    return d[lo] + (h - lo) * (d[Math.min(lo + 1, d.length - 1)] - d[lo]);
  };
  return [q(0.025), q(0.975)];
}

/** Per-row losses of any average over a bundled run (`DIR/run`, `DIR/model.onnx`, data in `DIR`), from the materialize engine. */
export interface RowLosses {
  /** The run's steps, oldest first. */
  readonly steps: readonly number[];
  /** The losses of the average with `weights` on `steps` (one label per row). */
  rowLoss(steps: readonly number[], weights: readonly number[]): Promise<Float64Array>;
  close(): Promise<void>;
}

export async function rowLosses(dir: string): Promise<RowLosses> {
  const checkpoints = [...(await discoverSeries([join(dir, 'run')])).checkpoints];
  const all = checkpoints.map((c) => c.step);
  const evaluator = await Evaluator.create({
    onnx: join(dir, 'model.onnx'),
    checkpoints,
    data: { dataDir: dir },
    engine: 'materialize',
    device: 'cpu',
  });
  return {
    steps: all,
    async rowLoss(steps, weights) {
      const w = new Map(steps.map((s, i) => [s, weights[i]]));
      const v =
        steps.length === 1
          ? raw(all, steps[0])
          : weightVector(
              'c',
              'weights',
              {},
              all,
              all.map((s) => w.get(s) ?? 0),
            );
      const per: PerExample = (await evaluator.scoreRows(v)).perExample;
      if (![...per.loss.count].every((c) => c === 1)) throw new Error('rowLoss: a row with other than one label');
      return per.loss.sum;
    },
    close: () => evaluator.close(),
  };
}
