/**
 * The core idea of avg-ckpt: every averaging method is a weight vector over the selected series.
 * `merge` materialises one vector; `sweep-window` evaluates many.
 */
import { AvgCkptError } from '../errors.js';

/**
 * What made a vector: a tag a registered method produces (recipes/registry.ts: `lawa`, `ema`,
 * `ema-per-step`, ...), or `raw` (one checkpoint) or `greedy-soup`. A string, so that a new
 * method is its own file and a registry line.
 */
export type Method = string;

export interface WeightVector {
  /** A short unique name for reports: `lawa-8`, `ema-0.9`, `raw-1200`. */
  readonly name: string;
  readonly method: Method;
  readonly params: Readonly<Record<string, number | string>>;
  /** Steps of the series the vector is defined over (ascending). */
  readonly steps: readonly number[];
  /** One weight per step, each >= 0, summing to 1. */
  readonly weights: readonly number[];
}

/** Builds a vector, checking that weights are finite, non-negative and sum to 1. */
export function weightVector(
  name: string,
  method: Method,
  params: Record<string, number | string>,
  steps: readonly number[],
  weights: readonly number[],
): WeightVector {
  if (weights.length !== steps.length)
    throw new AvgCkptError('internal', `${name}: ${weights.length} weights for ${steps.length} steps`);
  const sum = weights.reduce((a, b) => a + b, 0);
  if (!weights.every((w) => Number.isFinite(w) && w >= 0) || Math.abs(sum - 1) > 1e-9) {
    throw new AvgCkptError('bad-weights', `${name}: weights must be finite, non-negative and sum to 1 (sum ${sum})`);
  }
  return { name, method, params, steps, weights };
}

/** The steps with a non-zero weight: the checkpoints an average actually reads. */
export function support(v: WeightVector): number[] {
  return v.steps.filter((_, i) => v.weights[i] > 0);
}

/** Formats a number for a candidate name without float noise (0.9, not 0.9000000000000001). */
export function label(x: number): string {
  return String(Number(x.toPrecision(10)));
}
