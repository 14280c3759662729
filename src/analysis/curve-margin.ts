/**
 * How sure each point of a curve is: at every evaluated step, the best average there against the
 * raw checkpoint of that step, by the paired bootstrap `sweep-window` uses for its winner
 * (bootstrap.ts). A curve can dip below the raw one by noise alone; an interval that holds zero
 * says this data cannot tell the two apart at that step.
 */
import type { Metrics, PerExample } from '../eval/metrics.js';
import { BOOTSTRAP, hasRowValues, marginOver, type MarginInterval } from './bootstrap.js';

/** At one step: the best average there, and its margin over the raw checkpoint (`against`). */
export interface CurveStepMargin extends MarginInterval {
  readonly step: number;
  /** The average with the best metric at this step (ties: the first in the report's order). */
  readonly best: string;
}

/** The margins of a curve, one per evaluated step where the raw model and some average scored. */
export interface CurveMargin {
  readonly metric: string;
  readonly resamples: number;
  readonly seed: number;
  /** Coverage of the intervals, e.g. 0.95. */
  readonly level: number;
  /** The validation rows resampled. */
  readonly rows: number;
  readonly points: readonly CurveStepMargin[];
}

/** One method's point at a step, with the per-row values behind its metrics. */
export interface StepScore {
  readonly name: string;
  readonly raw: boolean;
  readonly metrics: Metrics;
  readonly perExample: PerExample;
}

/**
 * The best of the averages in `scores` (one step's points) against its raw point, over `rows`;
 * undefined when the raw point or every average is missing there (not defined yet, or failed),
 * or the metric has no per-row values.
 */
export function stepMargin(
  step: number,
  metric: string,
  scores: readonly StepScore[],
  better: (a: Metrics, b: Metrics) => boolean,
  rows: ArrayLike<number>,
): CurveStepMargin | undefined {
  const raw = scores.find((s) => s.raw);
  const averages = scores.filter((s) => !s.raw);
  if (raw === undefined || averages.length === 0 || !hasRowValues(metric, raw.perExample)) return undefined;
  const best = averages.reduce((a, b) => (better(b.metrics, a.metrics) ? b : a));
  return { step, best: best.name, ...marginOver(metric, raw.name, best.perExample, raw.perExample, rows) };
}

/** The report's margin object around the steps' margins (in step order); undefined when no step has one. */
export function curveMargin(metric: string, rows: number, points: readonly CurveStepMargin[]): CurveMargin | undefined {
  if (points.length === 0) return undefined;
  return {
    metric,
    resamples: BOOTSTRAP.resamples,
    seed: BOOTSTRAP.seed,
    level: BOOTSTRAP.level,
    rows,
    points: [...points].sort((a, b) => a.step - b.step),
  };
}
