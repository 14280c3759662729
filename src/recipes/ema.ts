import { AvgCkptError } from '../errors.js';
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
