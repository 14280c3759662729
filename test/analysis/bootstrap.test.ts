/**
 * The paired bootstrap against computations of its own: a plain float64 reimplementation on
 * fixed per-row values, a case small enough to know the bootstrap distribution exactly, and the
 * normal approximation of a large sample.
 */
import { describe, expect, it } from 'vitest';
import { holdoutSplit, marginOver, mulberry32, pairedBootstrap, quantile } from '../../src/analysis/bootstrap.js';
import type { PerExample } from '../../src/eval/metrics.js';

/** Per-row losses (one value per row) as the accumulator keeps them. */
function rowsOf(values: readonly number[], counts?: readonly number[]): PerExample {
  return { loss: { sum: Float64Array.from(values), count: Float64Array.from(counts ?? values.map(() => 1)) } };
}

describe('mulberry32', () => {
  it('is deterministic per seed, uniform in [0, 1) on average', () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const xs = Array.from({ length: 20000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5)).toBeLessThan(0.01);
    expect(mulberry32(8)()).not.toBe(mulberry32(7)());
  });
});

describe('pairedBootstrap', () => {
  it('equals a float64 reimplementation on fixed per-row values (rows of unequal counts, a subset of rows)', () => {
    const n = 37;
    const r = mulberry32(99);
    const counts = Array.from({ length: n }, (_, i) => 1 + (i % 3));
    const a = Array.from({ length: n }, (_, i) => counts[i] * (0.5 + r()));
    const b = Array.from({ length: n }, (_, i) => counts[i] * (0.45 + r()));
    const rows = Array.from({ length: n }, (_, i) => i).filter((i) => i % 4 !== 0);
    const settings = { resamples: 500, seed: 12345, level: 0.9 };
    // the reimplementation: draw, ratio of sums for each, difference; sort; NumPy's linear quantile
    const random = mulberry32(settings.seed);
    const diffs: number[] = [];
    for (let k = 0; k < settings.resamples; k++) {
      let sa = 0,
        sb = 0,
        c = 0;
      for (let j = 0; j < rows.length; j++) {
        const i = rows[Math.floor(random() * rows.length)];
        sa += a[i];
        sb += b[i];
        c += counts[i];
      }
      diffs.push(sa / c - sb / c);
    }
    diffs.sort((x, y) => x - y);
    const q = (p: number) => {
      const h = (diffs.length - 1) * p;
      return diffs[Math.floor(h)] + (h - Math.floor(h)) * (diffs[Math.ceil(h)] - diffs[Math.floor(h)]);
    };
    const total = (v: number[]) => rows.reduce((s, i) => s + v[i], 0) / rows.reduce((s, i) => s + counts[i], 0);
    const got = pairedBootstrap('loss', rowsOf(a, counts), rowsOf(b, counts), rows, settings);
    expect(got.margin).toBeCloseTo(total(a) - total(b), 12);
    expect(got.low).toBeCloseTo(q(0.05), 12);
    expect(got.high).toBeCloseTo(q(0.95), 12);
  });

  it('two rows whose differences are 0 and 1: the resampled mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so the 95% interval is [0, 1]', () => {
    const m = marginOver('loss', 'other', rowsOf([1, 2]), rowsOf([1, 1]), [0, 1]);
    expect(m).toEqual({ against: 'other', margin: 0.5, low: 0, high: 1, distinguishable: false });
  });

  it('a constant difference on every row has the interval [d, d]: distinguishable', () => {
    const a = Array.from({ length: 50 }, (_, i) => i / 10);
    const m = marginOver(
      'loss',
      'b',
      rowsOf(a),
      rowsOf(a.map((x) => x + 0.25)),
      Array.from({ length: 50 }, (_, i) => i),
    );
    expect(m.margin).toBeCloseTo(-0.25, 12);
    expect(m.low).toBeCloseTo(-0.25, 12);
    expect(m.high).toBeCloseTo(-0.25, 12);
    expect(m.distinguishable).toBe(true);
  });

  it('on 4000 rows matches the normal approximation: mean difference +- 1.96 sd / sqrt(n)', () => {
    const n = 4000;
    const r = mulberry32(5);
    const d = Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) + 0.02);
    const mean = d.reduce((s, x) => s + x, 0) / n;
    const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / n);
    const half = (1.959964 * sd) / Math.sqrt(n);
    const got = pairedBootstrap(
      'loss',
      rowsOf(d),
      rowsOf(d.map(() => 0)),
      Array.from({ length: n }, (_, i) => i),
    );
    expect(got.margin).toBeCloseTo(mean, 12);
    expect(Math.abs(got.low - (mean - half))).toBeLessThan(0.1 * half);
    expect(Math.abs(got.high - (mean + half))).toBeLessThan(0.1 * half);
  });

  it('accuracy and perplexity are recomputed from the row sums of each draw', () => {
    const per: PerExample = {
      loss: { sum: Float64Array.from([1, 3]), count: Float64Array.from([1, 1]) },
      accuracy: { sum: Float64Array.from([1, 0]), count: Float64Array.from([1, 1]) },
    };
    const zero: PerExample = {
      loss: { sum: Float64Array.from([0, 0]), count: Float64Array.from([1, 1]) },
      accuracy: { sum: Float64Array.from([0, 0]), count: Float64Array.from([1, 1]) },
    };
    expect(pairedBootstrap('accuracy', per, zero, [0, 1])).toMatchObject({ margin: 0.5, low: 0, high: 1 });
    // perplexity exp(mean loss): draws have mean loss 1, 2 or 3
    expect(pairedBootstrap('perplexity', per, zero, [0, 1])).toMatchObject({
      margin: Math.exp(2) - 1,
      low: Math.exp(1) - 1,
      high: Math.exp(3) - 1,
    });
  });

  it('quantile interpolates like NumPy', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([0, 10], 0.025)).toBeCloseTo(0.25, 12);
  });
});

describe('holdoutSplit', () => {
  it('splits every row into exactly one part, the held-out share rounded, the same each time', () => {
    const { choose, report } = holdoutSplit(101, 0.3);
    expect(report.length).toBe(30);
    expect(choose.length).toBe(71);
    expect([...choose, ...report].sort((a, b) => a - b)).toEqual(Array.from({ length: 101 }, (_, i) => i));
    expect(holdoutSplit(101, 0.3).report).toEqual(report);
    // a shuffle, not the first or last rows
    expect([...report]).not.toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(holdoutSplit(2, 0.01).report.length).toBe(1);
  });
});
