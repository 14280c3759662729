/**
 * Greedy soup on a fake held-out score: each checkpoint is one scalar parameter x_s and the
 * "loss" of an average is (sum_s w_s x_s)^2. Expected members are worked out by hand in the
 * comments, following Wortsman et al.'s Alg. 1.
 */
import { describe, expect, it } from 'vitest';
import { AvgCkptError } from '../../src/errors.js';
import { greedySoup } from '../../src/recipes/greedy-soup.js';
import type { WeightVector } from '../../src/recipes/weight-vector.js';

const STEPS = [10, 20, 30, 40, 50];

function fakeLoss(x: Record<number, number>) {
  const calls: string[] = [];
  const score = async (v: WeightVector) => {
    calls.push(v.steps.filter((_, i) => v.weights[i] > 0).join('+'));
    const mean = v.steps.reduce((a, s, i) => a + v.weights[i] * x[s], 0);
    return mean * mean;
  };
  return { score, calls };
}
const lower = (a: number, b: number) => a < b;

describe('greedySoup', () => {
  it('adds a checkpoint only when the soup strictly improves', async () => {
    // K=4 -> steps 20..50 with x = 3, -1, 2, -4: raw losses 9, 1, 4, 16, so the order is 30, 40, 20, 50.
    // {30}: 1. {30,40}: mean 0.5 -> 0.25, kept. {30,40,20}: mean 4/3 -> 1.78, rejected.
    // {30,40,50}: mean -1 -> 1, rejected. Step 10 is outside the K newest and never scored.
    const { score, calls } = fakeLoss({ 10: 0, 20: 3, 30: -1, 40: 2, 50: -4 });
    const { vector, score: final } = await greedySoup(STEPS, 4, score, lower);
    expect(vector.method).toBe('greedy-soup');
    expect(vector.name).toBe('greedy-soup-4');
    expect(vector.params).toEqual({ k: 4, members: 2 });
    expect(vector.steps).toEqual(STEPS);
    expect(vector.weights).toEqual([0, 0, 0.5, 0.5, 0]);
    expect(final).toBeCloseTo(0.25, 12);
    expect(calls).toEqual(['20', '30', '40', '50', '30+40', '20+30+40', '30+40+50']);
  });

  it('rejects an addition that only ties, and breaks ranking ties towards the newer checkpoint', async () => {
    // x(40) = x(50) = 1: equal raw losses, so 50 (newer) starts; {40,50} has the same loss and is rejected.
    const { score } = fakeLoss({ 10: 5, 20: 5, 30: 5, 40: 1, 50: 1 });
    const { vector } = await greedySoup(STEPS, 2, score, lower);
    expect(vector.weights).toEqual([0, 0, 0, 0, 1]);
  });

  it('follows the direction of the metric (maximized accuracy-like scores)', async () => {
    // The first case with the score negated and "better" meaning larger: same soup.
    const { score } = fakeLoss({ 10: 0, 20: 3, 30: -1, 40: 2, 50: -4 });
    const { vector } = await greedySoup(
      STEPS,
      4,
      async (v) => -(await score(v)),
      (a, b) => a > b,
    );
    expect(vector.weights).toEqual([0, 0, 0.5, 0.5, 0]);
  });

  it('keeps adding while the soup improves', async () => {
    // x = 4, -2, 2, -1 for 20..50: raw losses 16, 4, 4, 1; order 50, 40 (tie with 30, newer first), 30, 20.
    // {50}: 1. {50,40}: mean 0.5 -> 0.25, kept. {50,40,30}: mean -1/3 -> 0.111, kept.
    // {50,40,30,20}: mean 3/4 -> 0.5625, rejected.
    const { score, calls } = fakeLoss({ 10: 0, 20: 4, 30: -2, 40: 2, 50: -1 });
    const { vector } = await greedySoup(STEPS, 4, score, lower);
    expect(vector.weights.map((w) => w.toFixed(12))).toEqual([0, 0, 1 / 3, 1 / 3, 1 / 3].map((w) => w.toFixed(12)));
    expect(calls.slice(4)).toEqual(['40+50', '30+40+50', '20+30+40+50']);
  });

  it('rejects a K that is not a whole number or longer than the selection', async () => {
    const { score } = fakeLoss({ 10: 0, 20: 0, 30: 0, 40: 0, 50: 0 });
    await expect(greedySoup(STEPS, 0, score, lower)).rejects.toMatchObject({ code: 'usage' });
    await expect(greedySoup(STEPS, 2.5, score, lower)).rejects.toBeInstanceOf(AvgCkptError);
    await expect(greedySoup(STEPS, 6, score, lower)).rejects.toMatchObject({ code: 'empty-selection' });
  });
});
