/** A method and its parameters as users give them; turned into a weight vector over the selection. */
import { AvgCkptError } from '../errors.js';
import { ema, emaPerStep } from './ema.js';
import { explicitWeights } from './explicit.js';
import { lawa } from './lawa.js';
import { phema } from './phema.js';
import { uniform } from './uniform.js';
import type { WeightVector } from './weight-vector.js';

export const METHODS = ['uniform', 'lawa', 'ema', 'weights', 'phema'] as const;

export interface MethodSpec {
  method: (typeof METHODS)[number];
  /** lawa window (default: `last`, the selection's --last). */
  k?: number;
  last?: number;
  decay?: number;
  decayPerStep?: number;
  /** Comma-separated weights, oldest first. */
  weights?: string;
  sigmaRel?: number;
}

function need<T>(v: T | undefined, flag: string, method: string): T {
  if (v === undefined) throw new AvgCkptError('usage', `--method ${method} needs ${flag}`);
  return v;
}

export function vectorFromSpec(a: MethodSpec, steps: readonly number[], stepsKnown: boolean): WeightVector {
  switch (a.method) {
    case 'uniform':
      return uniform(steps);
    case 'lawa':
      return lawa(steps, need(a.k ?? a.last, '--k or --last', 'lawa'));
    case 'ema':
      if (a.decayPerStep !== undefined) {
        if (a.decay !== undefined) throw new AvgCkptError('usage', 'give either --decay or --decay-per-step, not both');
        if (!stepsKnown) throw new AvgCkptError('usage', '--decay-per-step needs real step numbers, and some checkpoints have none (name, metadata or trainer_state.json)');
        return emaPerStep(steps, a.decayPerStep);
      }
      return ema(steps, need(a.decay, '--decay or --decay-per-step', 'ema'));
    case 'weights':
      return explicitWeights(steps, need(a.weights, '--weights', 'weights').split(',').map((s) => {
        const x = Number(s.trim());
        if (s.trim() === '' || Number.isNaN(x)) throw new AvgCkptError('usage', `--weights: "${s}" is not a number`);
        return x;
      }));
    case 'phema':
      return phema(steps, need(a.sigmaRel, '--sigma-rel', 'phema'));
  }
}
