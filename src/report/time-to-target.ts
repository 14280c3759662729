/**
 * Time to target, the paper's headline: the first step at which each method reaches a metric
 * value, and the share of steps it saves against the raw model.
 */
import { AvgCkptError } from '../errors.js';

/** Whether the metric is maximized or minimized (the Evaluator's `direction`). */
export type Direction = 'max' | 'min';

/** True when `a` is at least as good as `b`. */
function reaches(a: number, b: number, direction: Direction): boolean {
  return direction === 'min' ? a <= b : a >= b;
}

export interface SeriesValues {
  readonly name: string;
  /** Metric values in step order; NaN where the method is not defined (a window not yet full). */
  readonly points: readonly { readonly step: number; readonly value: number }[];
}

export interface Target {
  readonly value: number;
  /** `best-raw`: the best value the raw model reached; `given`: --target. */
  readonly source: 'best-raw' | 'given';
}

export interface TimeToTarget {
  readonly name: string;
  /** First step at which the method reaches the target; null if it never does. */
  readonly step: number | null;
  /** The raw model's first step at the target; null if it never reaches it. */
  readonly baseline_step: number | null;
  /** baseline_step - step, when both exist (negative: the method is slower). */
  readonly steps_saved: number | null;
  /** steps_saved / baseline_step, e.g. 0.44 for "44% fewer steps". */
  readonly share_saved: number | null;
}

/** The first step whose value reaches `target`. */
export function firstReach(series: SeriesValues, target: number, direction: Direction): number | null {
  return series.points.find((p) => !Number.isNaN(p.value) && reaches(p.value, target, direction))?.step ?? null;
}

/** The best value of the raw series: the default target. */
export function bestRawTarget(raw: SeriesValues, direction: Direction): Target {
  const values = raw.points.map((p) => p.value).filter((v) => !Number.isNaN(v));
  if (values.length === 0) throw new AvgCkptError('internal', 'the raw curve has no points');
  return { value: direction === 'min' ? Math.min(...values) : Math.max(...values), source: 'best-raw' };
}

/** Time to target for every series, measured against `raw`. */
export function timeToTarget(raw: SeriesValues, methods: readonly SeriesValues[], target: number, direction: Direction): TimeToTarget[] {
  const baseline = firstReach(raw, target, direction);
  return methods.map((m) => {
    const step = firstReach(m, target, direction);
    const saved = step === null || baseline === null ? null : baseline - step;
    return { name: m.name, step, baseline_step: baseline, steps_saved: saved, share_saved: saved === null || baseline === 0 ? null : saved / baseline! };
  });
}

/** One sentence per method: "lawa-8 reaches the run's best loss (0.0520) at step 560 instead of 1000: 44% fewer steps". */
export function describeTimeToTarget(t: TimeToTarget, metric: string, target: Target): string {
  const what = target.source === 'best-raw' ? `the run's best ${metric} (${fmt(target.value)})` : `${metric} ${fmt(target.value)}`;
  if (t.step === null) return `${t.name} never reaches ${what}`;
  if (t.baseline_step === null) return `${t.name} reaches ${what} at step ${t.step}; the raw model never does`;
  const share = t.share_saved!;
  const verdict = share > 0 ? `${pct(share)} fewer steps` : share < 0 ? `${pct(-share)} more steps` : 'no steps saved';
  return `${t.name} reaches ${what} at step ${t.step} instead of ${t.baseline_step}: ${verdict}`;
}

function fmt(x: number): string {
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3);
}

function pct(share: number): string {
  return `${Math.round(share * 100)}%`;
}
