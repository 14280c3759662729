import { AvgCkptError } from '../errors.js';
import { defineMethod, required } from './method.js';
import { label, weightVector, type WeightVector } from './weight-vector.js';

/** User-given weights, one per selected checkpoint (oldest first), normalised to sum to 1. */
export function explicitWeights(steps: readonly number[], given: readonly number[]): WeightVector {
  if (given.length !== steps.length) {
    throw new AvgCkptError(
      'usage',
      `--weights has ${given.length} values but ${steps.length} checkpoints are selected (steps ${steps.join(', ')})`,
    );
  }
  if (!given.every((w) => Number.isFinite(w) && w >= 0))
    throw new AvgCkptError('usage', '--weights must be finite and non-negative');
  const sum = given.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) throw new AvgCkptError('usage', '--weights must not all be zero');
  return weightVector(
    'weights',
    'weights',
    { given: given.map(label).join(',') },
    steps,
    given.map((w) => w / sum),
  );
}

export const weightsMethod = defineMethod({
  name: 'weights',
  options: {
    weights: { type: 'string', describe: 'weights: one weight per selected checkpoint, oldest first (normalised)' },
  },
  fromSpec: (o, c) =>
    explicitWeights(
      c.steps,
      required(o.weights, '--weights', 'weights')
        .split(',')
        .map((s) => {
          const x = Number(s.trim());
          if (s.trim() === '' || Number.isNaN(x)) throw new AvgCkptError('usage', `--weights: "${s}" is not a number`);
          return x;
        }),
    ),
  produces: ['weights'],
  families: [],
  mergeFlags: () => undefined,
});
