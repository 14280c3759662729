/**
 * Weight-vector recipes against the guide's formulas, computed independently here: EMA by running
 * the recursion itself on one-hot "checkpoints", per-step EMA over irregular gaps, power EMA by
 * numerical quadrature of the profile.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AvgCkptError } from '../../src/errors.js';
import { ema, emaPerStep } from '../../src/recipes/ema.js';
import { explicitWeights } from '../../src/recipes/explicit.js';
import { lawa, raw } from '../../src/recipes/lawa.js';
import { gammaOf, phema, sigmaRelOf } from '../../src/recipes/phema.js';
import { uniform } from '../../src/recipes/uniform.js';
import { label, support, weightVector } from '../../src/recipes/weight-vector.js';

/** Runs ema_1 = theta_1, ema_i = g_i ema_(i-1) + (1 - g_i) theta_i with theta_i = e_i. */
function emaByRecursion(decays: number[]): number[] {
  const n = decays.length + 1;
  const oneHot = (i: number) => Array.from({ length: n }, (_, j) => (j === i ? 1 : 0));
  let e: number[] = oneHot(0);
  for (let i = 1; i < n; i++) {
    const g = decays[i - 1];
    const th = oneHot(i);
    e = e.map((x, j) => g * x + (1 - g) * th[j]);
  }
  return e;
}

function close(a: readonly number[], b: readonly number[], tol = 1e-12) {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i] - b[i]), `index ${i}: ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(tol);
}

function usage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof AvgCkptError ? e.code : 'other';
  }
  return 'none';
}

describe('uniform and LAWA', () => {
  it('uniform over all, and from a step', () => {
    expect(uniform([10, 20, 30, 40]).weights).toEqual([0.25, 0.25, 0.25, 0.25]);
    close(uniform([10, 20, 30, 40], 20).weights, [0, 1 / 3, 1 / 3, 1 / 3]);
    expect(uniform([10, 20, 30], 25).name).toBe('uniform-from-25');
    expect(usage(() => uniform([10, 20], 21))).toBe('empty-selection');
  });
  it('LAWA k: 1/k on the k newest', () => {
    close(lawa([1, 2, 3, 4, 5], 3).weights, [0, 0, 1 / 3, 1 / 3, 1 / 3]);
    expect(lawa([1, 2, 3], 3).weights).toEqual([1 / 3, 1 / 3, 1 / 3]);
    expect(lawa([1, 2, 3], 1).weights).toEqual([0, 0, 1]);
    expect(lawa([1, 2, 3], 2).name).toBe('lawa-2');
    expect(support(lawa([5, 6, 7, 8], 2))).toEqual([7, 8]);
    expect(usage(() => lawa([1, 2], 3))).toBe('empty-selection');
    expect(usage(() => lawa([1, 2], 0))).toBe('usage');
    expect(usage(() => lawa([1, 2], 1.5))).toBe('usage');
  });
  it('raw: the newest, or a named step', () => {
    expect(raw([1, 2, 3]).weights).toEqual([0, 0, 1]);
    expect(raw([1, 2, 3], 2).weights).toEqual([0, 1, 0]);
    expect(usage(() => raw([1, 2, 3], 4))).toBe('empty-selection');
  });
});

describe('EMA', () => {
  it('constant decay matches the recursion, and the closed form w_1 = g^(n-1), w_i = (1-g) g^(n-i)', () => {
    for (const g of [0, 0.5, 0.9, 0.99]) {
      for (const n of [1, 2, 5, 30]) {
        const steps = Array.from({ length: n }, (_, i) => 100 * (i + 1));
        const w = ema(steps, g).weights;
        close(w, emaByRecursion(Array(n - 1).fill(g)));
        const closed = steps.map((_, i) => (i === 0 ? g ** (n - 1) : (1 - g) * g ** (n - 1 - i)));
        close(w, closed);
      }
    }
    expect(ema([1, 2], 0.9).name).toBe('ema-0.9');
  });
  it('per-step decay b over irregular gaps: checkpoint decay b^(s_i - s_(i-1))', () => {
    const steps = [100, 150, 400, 401, 1000];
    const b = 0.995;
    const w = emaPerStep(steps, b).weights;
    close(w, emaByRecursion([b ** 50, b ** 250, b ** 1, b ** 599]));
    // with regular spacing it equals the constant-decay EMA at b^spacing
    close(emaPerStep([64, 128, 192, 256], 0.999).weights, ema([64, 128, 192, 256], 0.999 ** 64).weights);
  });
  it('property: per-step EMA equals the recursion for random gaps and decays', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 20 }),
        fc.double({ min: 0.9, max: 0.9999, noNaN: true }),
        (gaps, b) => {
          const steps = [gaps[0]];
          for (const g of gaps.slice(1)) steps.push(steps[steps.length - 1] + g);
          const w = emaPerStep(steps, b).weights;
          const want = emaByRecursion(steps.slice(1).map((s, i) => b ** (s - steps[i])));
          return w.every((x, i) => Math.abs(x - want[i]) < 1e-12);
        },
      ),
      { numRuns: 200 },
    );
  });
  it('decays outside [0, 1) are usage errors', () => {
    for (const g of [1, -0.1, 1.5, NaN]) {
      expect(usage(() => ema([1, 2], g))).toBe('usage');
      expect(usage(() => emaPerStep([1, 2], g))).toBe('usage');
    }
  });
});

describe('power-function EMA (EDM2)', () => {
  /** sigma_rel from the guide, written out independently. */
  const sigma = (g: number) => (g + 1) ** 0.5 * (g + 2) ** -1 * (g + 3) ** -0.5;

  it('sigma_rel 0.05 <-> gamma 16.97 and 0.10 <-> 6.94', () => {
    expect(Math.abs(gammaOf(0.05) - 16.97)).toBeLessThan(0.005);
    expect(Math.abs(gammaOf(0.1) - 6.94)).toBeLessThan(0.005);
    expect(Math.abs(sigma(16.97) - 0.05)).toBeLessThan(1e-4);
    expect(Math.abs(sigmaRelOf(16.97) - sigma(16.97))).toBeLessThan(1e-15);
    expect(Math.abs(sigma(gammaOf(0.07)) - 0.07)).toBeLessThan(1e-12);
  });
  it('sigma_rel outside the valid range is a usage error', () => {
    for (const s of [0, -0.1, 0.2887, 0.5, NaN]) expect(usage(() => gammaOf(s))).toBe('usage');
  });
  it('regular spacing: w_i proportional to (s_i + d/2)^(g+1) - (s_i - d/2)^(g+1) (the guide)', () => {
    for (const sr of [0.05, 0.1, 0.2]) {
      const d = 100;
      const steps = Array.from({ length: 12 }, (_, i) => d * (i + 1));
      const g = gammaOf(sr);
      const mass = steps.map((s) => (s + d / 2) ** (g + 1) - (s - d / 2) ** (g + 1));
      const sum = mass.reduce((a, b) => a + b, 0);
      close(
        phema(steps, sr).weights,
        mass.map((m) => m / sum),
        1e-12,
      );
    }
  });
  it('irregular spacing: each checkpoint gets the profile mass between midpoints (numerical quadrature)', () => {
    const steps = [10, 50, 60, 200, 210, 500];
    const sr = 0.15;
    const g = gammaOf(sr);
    const T = 500 + (500 - 210) / 2; // last gap's half past the newest
    const bounds = [Math.max(0, 10 - 20), 30, 55, 130, 205, 355, T];
    // integrate (g+1)/T^(g+1) tau^g dtau by the midpoint rule
    const integral = (lo: number, hi: number) => {
      const k = 20000;
      let acc = 0;
      for (let j = 0; j < k; j++) acc += ((g + 1) / T) * ((lo + ((j + 0.5) * (hi - lo)) / k) / T) ** g;
      return (acc * (hi - lo)) / k;
    };
    const mass = steps.map((_, i) => integral(bounds[i], bounds[i + 1]));
    const sum = mass.reduce((a, b) => a + b, 0);
    close(
      phema(steps, sr).weights,
      mass.map((m) => m / sum),
      1e-6,
    );
  });
  it('large gamma on large steps does not overflow', () => {
    const steps = Array.from({ length: 50 }, (_, i) => 1_000_000 * (i + 1));
    const w = phema(steps, 0.01).weights;
    expect(w.every(Number.isFinite)).toBe(true);
    expect(w[49]).toBeGreaterThan(w[48]);
  });
});

describe('explicit weights and the vector invariants', () => {
  it('normalises given weights', () => {
    expect(explicitWeights([1, 2, 3], [1, 1, 2]).weights).toEqual([0.25, 0.25, 0.5]);
    expect(explicitWeights([1, 2], [0, 3]).weights).toEqual([0, 1]);
  });
  it('rejects wrong count, negative, non-finite, all-zero', () => {
    expect(usage(() => explicitWeights([1, 2], [1]))).toBe('usage');
    expect(usage(() => explicitWeights([1, 2], [1, -1]))).toBe('usage');
    expect(usage(() => explicitWeights([1, 2], [1, Infinity]))).toBe('usage');
    expect(usage(() => explicitWeights([1, 2], [0, 0]))).toBe('usage');
  });
  it('weightVector refuses vectors that do not sum to 1 or have negative entries', () => {
    expect(usage(() => weightVector('x', 'weights', {}, [1, 2], [0.5, 0.6]))).toBe('bad-weights');
    expect(usage(() => weightVector('x', 'weights', {}, [1, 2], [1.5, -0.5]))).toBe('bad-weights');
    expect(usage(() => weightVector('x', 'weights', {}, [1, 2], [NaN, 1]))).toBe('bad-weights');
    expect(usage(() => weightVector('x', 'weights', {}, [1, 2], [1]))).toBe('internal');
  });
  it('labels without float noise', () => {
    expect(label(0.1 + 0.2)).toBe('0.3');
    expect(label(0.9)).toBe('0.9');
  });
});
