import { AvgCkptError } from '../errors.js';
import { defineMethod } from './method.js';
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

export const uniformMethod = defineMethod({
  name: 'uniform',
  options: {},
  fromSpec: (_o, c) => uniform(c.steps),
  produces: ['uniform'],
  families: [
    {
      method: 'uniform',
      param: 'from_step',
      vector: uniform,
      sweep: { key: 'uniformFrom', describe: 'Uniform averages from these steps to the newest' },
      chart: { title: 'uniform: from step' },
    },
  ],
  // from a step, the weights spell it out (the selection's own --from-step may differ)
  mergeFlags: (v) => (v.params.from_step === undefined ? ['--method', 'uniform'] : undefined),
});
