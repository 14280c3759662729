/**
 * Is the winner's margin real? A paired bootstrap over the validation rows: the rows are drawn
 * with replacement, the same draw for both averages, and the ranking metric's difference is
 * recomputed from the per-row sums each time. The 2.5% and 97.5% quantiles of those differences
 * bound the margin; an interval that holds zero means this data cannot tell the two apart.
 *
 * The draws come from a small seeded PRNG of our own (mulberry32), so a report is the same on
 * every machine and every run.
 */
import { metricOver, type PerExample } from '../eval/metrics.js';

/** mulberry32 (Tommy Ettinger, public domain): 32-bit state, uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface BootstrapSettings {
  /** Resamples of the rows (default 1000). */
  readonly resamples: number;
  readonly seed: number;
  /** Coverage of the interval (default 0.95: the 2.5% and 97.5% quantiles). */
  readonly level: number;
}

export const BOOTSTRAP: BootstrapSettings = { resamples: 1000, seed: 1, level: 0.95 };

/** The q-quantile of sorted values, interpolated linearly between order statistics (NumPy's default). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

export interface MarginInterval {
  /** The candidate the winner is compared with. */
  readonly against: string;
  /** metric(winner) - metric(against) on the rows reported, in the metric's units. */
  readonly margin: number;
  readonly low: number;
  readonly high: number;
  /** False when the interval holds zero: the two are not distinguishable on this data. */
  readonly distinguishable: boolean;
}

/**
 * The paired bootstrap interval of metric(a) - metric(b) over `rows` (indexes into the per-row
 * sums): `resamples` draws of `rows.length` rows with replacement.
 */
export function pairedBootstrap(
  metric: string,
  a: PerExample,
  b: PerExample,
  rows: ArrayLike<number>,
  settings: BootstrapSettings = BOOTSTRAP,
): { margin: number; low: number; high: number } {
  const n = rows.length;
  const random = mulberry32(settings.seed);
  const draw = new Int32Array(n);
  const diffs = new Float64Array(settings.resamples);
  for (let r = 0; r < settings.resamples; r++) {
    for (let j = 0; j < n; j++) draw[j] = rows[Math.floor(random() * n)];
    diffs[r] = metricOver(metric, a, draw) - metricOver(metric, b, draw);
  }
  diffs.sort();
  const tail = (1 - settings.level) / 2;
  return {
    margin: metricOver(metric, a, rows) - metricOver(metric, b, rows),
    low: quantile(diffs, tail),
    high: quantile(diffs, 1 - tail),
  };
}

/** Every row index of `n` rows: the bootstrap's rows when none is held out. */
export function allRows(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/**
 * Whether `per` has per-row values of `metric` (perplexity's are the loss's); a graph output
 * that is one number per batch has none.
 */
export function hasRowValues(metric: string, per: PerExample): boolean {
  return per[metric === 'perplexity' ? 'loss' : metric] !== undefined;
}

/** The winner against one other candidate, with the verdict. */
export function marginOver(
  metric: string,
  against: string,
  winner: PerExample,
  other: PerExample,
  rows: ArrayLike<number>,
  settings: BootstrapSettings = BOOTSTRAP,
): MarginInterval {
  const { margin, low, high } = pairedBootstrap(metric, winner, other, rows, settings);
  return { against, margin, low, high, distinguishable: low > 0 || high < 0 };
}

/**
 * A seeded split of `rows` rows for --holdout: `fraction` of them (at least one) are held out to
 * report on, the rest choose the winner. Both lists are in row order.
 */
export function holdoutSplit(
  rows: number,
  fraction: number,
  seed: number = BOOTSTRAP.seed,
): { choose: Int32Array; report: Int32Array } {
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  const random = mulberry32(seed ^ 0x5bd1e995);
  for (let i = rows - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const held = Math.min(rows - 1, Math.max(1, Math.round(rows * fraction)));
  return { choose: order.slice(held).sort(), report: order.slice(0, held).sort() };
}
