/**
 * The margin at one step of a curve: the best average (by the ranking metric, ties to the first)
 * against the raw point, by the plain bootstrap of test/helpers; none where the raw point, every
 * average or the per-row values are missing.
 */
import { describe, expect, it } from 'vitest';
import { curveMargin, stepMargin, type StepScore } from '../../src/analysis/curve-margin.js';
import type { Metrics } from '../../src/eval/metrics.js';
import { plainBootstrap } from '../helpers/bootstrap-reference.js';

const lower = (a: Metrics, b: Metrics) => a.loss < b.loss;
/** A point whose 8 rows have losses `values`, its metric their mean. */
function point(name: string, values: number[]): StepScore {
  return {
    name,
    raw: name === 'raw',
    metrics: { loss: values.reduce((a, x) => a + x, 0) / values.length },
    perExample: { loss: { sum: Float64Array.from(values), count: new Float64Array(values.length).fill(1) } },
  };
}
const raw = point('raw', [0.9, 0.8, 1.1, 0.7, 1.0, 0.95, 0.85, 1.2]);
const lawa = point('lawa-5', [0.5, 0.6, 0.4, 0.7, 0.55, 0.45, 0.65, 0.5]);
const ema = point('ema-0.9', [0.6, 0.7, 0.5, 0.8, 0.65, 0.55, 0.75, 0.6]);
const rows = [0, 1, 2, 3, 4, 5, 6, 7];

describe('stepMargin', () => {
  it('is the best average against the raw point, with the plain bootstrap interval', () => {
    const m = stepMargin(300, 'loss', [raw, ema, lawa], lower, rows)!;
    expect(m).toMatchObject({ step: 300, best: 'lawa-5', against: 'raw' });
    expect(m.margin).toBeCloseTo(lawa.metrics.loss - raw.metrics.loss, 14);
    const [low, high] = plainBootstrap(lawa.perExample.loss.sum, raw.perExample.loss.sum, rows, 1, 1000);
    expect(m.low).toBeCloseTo(low, 12);
    expect(m.high).toBeCloseTo(high, 12);
    expect(m.distinguishable).toBe(high < 0);
    expect(m.distinguishable).toBe(true);
  });

  it('ties go to the first average; none without a raw point, an average, or per-row values', () => {
    const twin = { ...lawa, name: 'lawa-6' };
    expect(stepMargin(300, 'loss', [raw, lawa, twin], lower, rows)!.best).toBe('lawa-5');
    expect(stepMargin(300, 'loss', [lawa, ema], lower, rows)).toBeUndefined();
    expect(stepMargin(300, 'loss', [raw], lower, rows)).toBeUndefined();
    const noRows = { ...raw, perExample: {} };
    expect(stepMargin(300, 'output:score', [noRows, { ...lawa, perExample: {} }], lower, rows)).toBeUndefined();
  });

  it('the report lists the steps in order, with the bootstrap settings; none when no step has a margin', () => {
    const at = (step: number) => stepMargin(step, 'loss', [raw, lawa], lower, rows)!;
    const m = curveMargin('loss', 8, [at(500), at(100), at(300)])!;
    expect(m).toMatchObject({ metric: 'loss', resamples: 1000, seed: 1, level: 0.95, rows: 8 });
    expect(m.points.map((p) => p.step)).toEqual([100, 300, 500]);
    expect(curveMargin('loss', 8, [])).toBeUndefined();
  });
});
