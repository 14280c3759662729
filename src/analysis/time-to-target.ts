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
export function timeToTarget(
  raw: SeriesValues,
  methods: readonly SeriesValues[],
  target: number,
  direction: Direction,
): TimeToTarget[] {
  const baseline = firstReach(raw, target, direction);
  return methods.map((m) => {
    const step = firstReach(m, target, direction);
    const saved = step === null || baseline === null ? null : baseline - step;
    return {
      name: m.name,
      step,
      baseline_step: baseline,
      steps_saved: saved,
      share_saved: saved === null || baseline === 0 ? null : saved / baseline!,
    };
  });
}
