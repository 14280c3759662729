/** Time to target on hand-made curves; every expected step and share is worked out in the comments. */
import { describe, expect, it } from 'vitest';
import { bestRawTarget, firstReach, timeToTarget, type SeriesValues } from '../../src/analysis/time-to-target.js';
import { describeTimeToTarget } from '../../src/report/time-to-target.js';

const series = (name: string, values: number[], steps = [200, 400, 600, 800, 1000]): SeriesValues => ({
  name,
  points: steps.map((step, i) => ({ step, value: values[i] })),
});

const raw = series('raw', [1.0, 0.6, 0.5, 0.45, 0.4]);
const lawa = series('lawa-2', [NaN, 0.55, 0.42, 0.39, 0.35]);
const ema = series('ema-0.9', [1.2, 0.9, 0.7, 0.5, 0.41]);

describe('time to target', () => {
  it('defaults the target to the best raw value, for either direction', () => {
    expect(bestRawTarget(raw, 'min')).toEqual({ value: 0.4, source: 'best-raw' });
    expect(bestRawTarget(series('raw', [0.5, NaN, 0.9, 0.8, 0.85]), 'max')).toEqual({ value: 0.9, source: 'best-raw' });
  });

  it('finds the first step at or past the target, skipping steps where the method is undefined', () => {
    expect(firstReach(lawa, 0.4, 'min')).toBe(800); // 0.39 <= 0.4; 0.42 is not
    expect(firstReach(lawa, 0.55, 'min')).toBe(400); // equality counts
    expect(firstReach(lawa, 2, 'min')).toBe(400); // NaN at 200 is not a value
    expect(firstReach(ema, 0.3, 'min')).toBeNull();
    expect(firstReach(series('acc', [0.5, 0.7, 0.9, 0.95, 0.96]), 0.9, 'max')).toBe(600);
  });

  it('measures steps saved against the raw model', () => {
    // raw reaches 0.4 at 1000; lawa-2 at 800 (200 fewer, 20%); ema-0.9 never.
    const t = timeToTarget(raw, [lawa, ema], 0.4, 'min');
    expect(t).toEqual([
      { name: 'lawa-2', step: 800, baseline_step: 1000, steps_saved: 200, share_saved: 0.2 },
      { name: 'ema-0.9', step: null, baseline_step: 1000, steps_saved: null, share_saved: null },
    ]);
    // target 0.5: raw at 600, lawa-2 at 600 (0 saved), ema at 800 (200 more, -1/3)
    const u = timeToTarget(raw, [lawa, ema], 0.5, 'min');
    expect(u.map((x) => x.share_saved)).toEqual([0, -200 / 600]);
  });

  it('prints one sentence per method', () => {
    const best = { value: 0.4, source: 'best-raw' as const };
    const [l, e] = timeToTarget(raw, [lawa, ema], 0.4, 'min');
    expect(describeTimeToTarget(l, 'loss', best)).toBe(
      "lawa-2 reaches the run's best loss (0.4000) at step 800 instead of 1000: 20% fewer steps",
    );
    expect(describeTimeToTarget(e, 'loss', best)).toBe("ema-0.9 never reaches the run's best loss (0.4000)");
    const [slow] = timeToTarget(raw, [ema], 0.5, 'min');
    expect(describeTimeToTarget(slow, 'loss', { value: 0.5, source: 'given' })).toBe(
      'ema-0.9 reaches loss 0.5000 at step 800 instead of 600: 33% more steps',
    );
    const [only] = timeToTarget(raw, [lawa], 0.36, 'min');
    expect(describeTimeToTarget(only, 'loss', { value: 0.36, source: 'given' })).toBe(
      'lawa-2 reaches loss 0.3600 at step 1000; the raw model never does',
    );
  });
});
