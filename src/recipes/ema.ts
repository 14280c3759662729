import { AvgCkptError } from '../errors.js';
import { defineMethod, required } from './method.js';
import { label, weightVector, type WeightVector } from './weight-vector.js';

/**
 * EMA over the saved checkpoints (the paper's Alg. 2): ema_1 = theta_1,
 * ema_i = g_i * ema_(i-1) + (1 - g_i) * theta_i, no bias correction. Unrolled,
 * w_i = (1 - g_i) * prod_{j>i} g_j, and w_1 = prod_{j>1} g_j.
 */
function unroll(gs: readonly number[]): number[] {
  const n = gs.length + 1;
  const w = new Array<number>(n);
  let tail = 1; // product of g_j for j > i
  for (let i = n - 1; i >= 1; i--) {
    const g = gs[i - 1];
    w[i] = (1 - g) * tail;
    tail *= g;
  }
  w[0] = tail;
  return w;
}

function checkDecay(flag: string, g: number): void {
  if (!(g >= 0 && g < 1)) throw new AvgCkptError('usage', `${flag} must be in [0, 1), got ${g}`);
}

/** EMA with a constant decay g per saved checkpoint. */
export function ema(steps: readonly number[], g: number): WeightVector {
  checkDecay('EMA decay', g);
  const w = unroll(steps.slice(1).map(() => g));
  return weightVector(`ema-${label(g)}`, 'ema', { decay: g }, steps, w);
}

/**
 * EMA given per optimizer step (users think in 0.999): over a gap of d steps between saved
 * checkpoints the decay is b^d, which handles irregular spacing.
 */
export function emaPerStep(steps: readonly number[], b: number): WeightVector {
  checkDecay('per-step EMA decay', b);
  const w = unroll(steps.slice(1).map((s, i) => b ** (s - steps[i])));
  return weightVector(`ema-step-${label(b)}`, 'ema-per-step', { decay_per_step: b }, steps, w);
}

export const emaMethod = defineMethod({
  name: 'ema',
  options: {
    decay: { type: 'number', describe: 'ema: decay g per saved checkpoint (the paper: 0.9)' },
    decayPerStep: {
      type: 'number',
      describe: 'ema: decay b per optimizer step (e.g. 0.999), b^gap between checkpoints',
    },
  },
  fromSpec: (o, c) => {
    if (o.decayPerStep === undefined) return ema(c.steps, required(o.decay, '--decay or --decay-per-step', 'ema'));
    if (o.decay !== undefined) throw new AvgCkptError('usage', 'give either --decay or --decay-per-step, not both');
    if (!c.stepsKnown)
      throw new AvgCkptError(
        'usage',
        '--decay-per-step needs real step numbers, and some checkpoints have none (name, metadata or trainer_state.json)',
      );
    return emaPerStep(c.steps, o.decayPerStep);
  },
  produces: ['ema', 'ema-per-step'],
  families: [
    {
      method: 'ema',
      param: 'decay',
      vector: ema,
      sweep: {
        key: 'ema',
        describe: 'EMA decays per saved checkpoint, e.g. 0.5,0.8,0.9',
        defaults: [0.5, 0.8, 0.9, 0.95],
      },
      curve: {
        key: 'ema',
        flag: 'ema',
        placeholder: 'G',
        describe: 'EMA decays per saved checkpoint, e.g. 0.9: from the first checkpoint to each step',
      },
      chart: { title: 'EMA: decay per checkpoint' },
    },
    {
      method: 'ema-per-step',
      param: 'decay_per_step',
      vector: emaPerStep,
      sweep: { key: 'emaPerStep', describe: 'EMA decays per optimizer step, e.g. 0.999' },
      chart: { title: 'EMA: decay per optimizer step' },
    },
  ],
  mergeFlags: (v) =>
    v.method === 'ema'
      ? ['--method', 'ema', '--decay', String(v.params.decay)]
      : ['--method', 'ema', '--decay-per-step', String(v.params.decay_per_step)],
});
