import { AvgCkptError } from '../errors.js';
import { weightVector, type WeightVector } from './weight-vector.js';

/** SWA-style: w_i = 1/m over the m steps in [from, newest]. */
export function uniform(steps: readonly number[], fromStep?: number): WeightVector {
  const m = steps.filter((s) => fromStep === undefined || s >= fromStep).length;
  if (m === 0) throw new AvgCkptError('empty-selection', `uniform: no checkpoint at or after step ${fromStep}`);
  const w = steps.map((s) => (fromStep === undefined || s >= fromStep ? 1 / m : 0));
  return fromStep === undefined
    ? weightVector('uniform', 'uniform', {}, steps, w)
    : weightVector(`uniform-from-${fromStep}`, 'uniform', { from_step: fromStep }, steps, w);
}
