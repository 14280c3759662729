import { AvgCkptError } from '../errors.js';
import { defineMethod, required } from './method.js';
import { weightVector, type WeightVector } from './weight-vector.js';

/** LAWA (Kaddour 2022; the paper's Alg. 1): w_i = 1/k for the k newest, else 0. */
export function lawa(steps: readonly number[], k: number): WeightVector {
  if (!Number.isSafeInteger(k) || k < 1)
    throw new AvgCkptError('usage', `LAWA window k must be a whole number >= 1, got ${k}`);
  if (k > steps.length) {
    throw new AvgCkptError(
      'empty-selection',
      `LAWA window k=${k} is longer than the ${steps.length} selected checkpoints`,
    );
  }
  const n = steps.length;
  return weightVector(
    `lawa-${k}`,
    'lawa',
    { k },
    steps,
    steps.map((_, i) => (i >= n - k ? 1 / k : 0)),
  );
}

/** The newest checkpoint alone: the baseline every average is compared with. */
export function raw(steps: readonly number[], step = steps[steps.length - 1]): WeightVector {
  const i = steps.indexOf(step);
  if (i < 0) throw new AvgCkptError('empty-selection', `no checkpoint at step ${step}`);
  return weightVector(
    `raw-${step}`,
    'raw',
    { step },
    steps,
    steps.map((_, j) => (j === i ? 1 : 0)),
  );
}

export const lawaMethod = defineMethod({
  name: 'lawa',
  options: { k: { type: 'number', describe: 'lawa: window length (default: --last)' } },
  fromSpec: (o, c) => lawa(c.steps, required(o.k ?? c.last, '--k or --last', 'lawa')),
  produces: ['lawa'],
  families: [
    {
      method: 'lawa',
      param: 'k',
      vector: lawa,
      // the averaging guide: a doubling ladder around the paper's ~20 checkpoints
      sweep: {
        key: 'windows',
        describe: 'LAWA windows ending at the newest checkpoint, e.g. 1,2,4,8,16,32',
        defaults: [2, 4, 8, 16, 20, 32, 64],
        fitsIn: (k, n) => k <= n,
        whole: (n) => n,
      },
      curve: {
        key: 'windows',
        flag: 'window',
        placeholder: 'K',
        describe: 'LAWA windows k, e.g. 5 or 5,10: the k checkpoints ending at each step',
        needs: (k) => k,
      },
      chart: { title: 'LAWA: window size k (checkpoints)', log2: true },
    },
  ],
  mergeFlags: (v) => ['--method', 'lawa', '--k', String(v.params.k)],
});
