import { AvgCkptError } from '../errors.js';
import { weightVector, type WeightVector } from './weight-vector.js';

/** LAWA (Kaddour 2022; the paper's Alg. 1): w_i = 1/k for the k newest, else 0. */
export function lawa(steps: readonly number[], k: number): WeightVector {
  if (!Number.isSafeInteger(k) || k < 1) throw new AvgCkptError('usage', `LAWA window k must be a whole number >= 1, got ${k}`);
  if (k > steps.length) {
    throw new AvgCkptError('empty-selection', `LAWA window k=${k} is longer than the ${steps.length} selected checkpoints`);
  }
  const n = steps.length;
  return weightVector(`lawa-${k}`, 'lawa', { k }, steps, steps.map((_, i) => (i >= n - k ? 1 / k : 0)));
}

/** The newest checkpoint alone: the baseline every average is compared with. */
export function raw(steps: readonly number[], step = steps[steps.length - 1]): WeightVector {
  const i = steps.indexOf(step);
  if (i < 0) throw new AvgCkptError('empty-selection', `no checkpoint at step ${step}`);
  return weightVector(`raw-${step}`, 'raw', { step }, steps, steps.map((_, j) => (j === i ? 1 : 0)));
}
