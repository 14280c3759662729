import { AvgCkptError } from '../errors.js';
import { defineMethod, required } from './method.js';
import { label, weightVector, type WeightVector } from './weight-vector.js';

/** EDM2's relative width of a power-function EMA profile with exponent gamma. */
export function sigmaRelOf(gamma: number): number {
  return Math.sqrt(gamma + 1) / ((gamma + 2) * Math.sqrt(gamma + 3));
}

/** Inverts sigmaRelOf by bisection (it decreases monotonically in gamma). */
export function gammaOf(sigmaRel: number): number {
  if (!(sigmaRel > 0 && sigmaRel < sigmaRelOf(0))) {
    throw new AvgCkptError('usage', `--sigma-rel must be in (0, ${sigmaRelOf(0).toFixed(4)}), got ${sigmaRel}`);
  }
  let lo = 0;
  let hi = 1;
  while (sigmaRelOf(hi) > sigmaRel) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (sigmaRelOf(mid) > sigmaRel) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Post-hoc power-function EMA (Karras et al. 2024) from raw checkpoints: each checkpoint stands
 * for the interval between the midpoints to its neighbours, and gets the profile's mass there,
 * w_i proportional to b_hi^(gamma+1) - b_lo^(gamma+1). Steps are scaled by the last bound so
 * large exponents cannot overflow.
 */
export function phema(steps: readonly number[], sigmaRel: number): WeightVector {
  const gamma = gammaOf(sigmaRel);
  const n = steps.length;
  const gap = (i: number) => (n === 1 ? steps[0] : i === 0 ? steps[1] - steps[0] : steps[i] - steps[i - 1]);
  const bounds: number[] = [Math.max(0, steps[0] - gap(0) / 2)];
  for (let i = 0; i < n - 1; i++) bounds.push((steps[i] + steps[i + 1]) / 2);
  bounds.push(steps[n - 1] + gap(n - 1) / 2);
  const top = bounds[n];
  const p = gamma + 1;
  const mass = steps.map((_, i) => (bounds[i + 1] / top) ** p - (bounds[i] / top) ** p);
  const sum = mass.reduce((a, b) => a + b, 0);
  return weightVector(
    `phema-${label(sigmaRel)}`,
    'phema',
    { sigma_rel: sigmaRel, gamma: Number(gamma.toFixed(4)) },
    steps,
    mass.map((m) => m / sum),
  );
}

export const phemaMethod = defineMethod({
  name: 'phema',
  options: {
    sigmaRel: { type: 'number', describe: 'phema: relative width of the power EMA profile (EDM2: 0.05-0.10)' },
  },
  fromSpec: (o, c) => phema(c.steps, required(o.sigmaRel, '--sigma-rel', 'phema')),
  produces: ['phema'],
  families: [
    {
      method: 'phema',
      param: 'sigma_rel',
      vector: phema,
      sweep: { key: 'phema', describe: 'Post-hoc power EMA widths sigma_rel, e.g. 0.05,0.1 (Karras et al. 2024)' },
      chart: { title: 'power EMA: sigma_rel' },
    },
  ],
  mergeFlags: (v) => ['--method', 'phema', '--sigma-rel', String(v.params.sigma_rel)],
});
