/**
 * What `sweep-window` and `curve` need of whatever scores a candidate average: its metrics, which
 * metric ranks and in which direction, and a few words for the report. Two implementations:
 * the onnxruntime `Evaluator`, and the `CommandScorer` that runs the user's own evaluation
 * (`--eval-cmd`). This file must not import onnxruntime: the command path never loads it.
 */
import { AvgCkptError } from '../errors.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { ExportedInitializer } from './binding.js';
import type { Metrics } from './metrics.js';

export interface Scorer {
  /** Where it ran (`cpu`, `cuda`, `webgpu`; `external` for a command). */
  readonly device: string;
  /** How (`mixture`, `materialize`, `command`), and why, in one line. */
  readonly engineKind: string;
  readonly engineReason: string;
  /** Milliseconds its setup took. */
  readonly setupMs: number;
  readonly rankMetric: string;
  readonly direction: 'max' | 'min';
  /** Lines for the user once it is ready (device fallbacks, data matching, scratch folder). */
  readonly notes: readonly string[];
  /** Float weights no checkpoint supplies, scored as exported in every candidate (ONNX, --allow-unmapped). */
  readonly unmapped?: readonly ExportedInitializer[];
  /**
   * The metrics of the average `vector` describes. Throws `CandidateFailed` when only this
   * candidate could not be scored (its command failed): the sweep goes on with the others.
   */
  score(vector: WeightVector): Promise<Metrics>;
  /** True when `a` ranks strictly better than `b` (`ranksBetter` on the ranking metric). */
  better(a: Metrics, b: Metrics): boolean;
  /**
   * Scores every vector, `onOutcome` as each finishes (in any order). Only for a scorer that
   * shares work between candidates (a command: one pass over the checkpoints writes a batch of
   * them); `scoreEach` calls it when present, and otherwise scores them one by one.
   */
  scoreAll?(vectors: readonly WeightVector[], onOutcome: (index: number, outcome: Outcome) => void): Promise<void>;
  close(): Promise<void>;
}

/** One candidate's score, or why it has none. */
export type Outcome =
  | { readonly metrics: Metrics; readonly ms: number }
  | { readonly failed: string; readonly ms: number };

/** A candidate that could not be scored; `detail`: lines shown below the message (the command's stderr). */
export class CandidateFailed extends AvgCkptError {
  constructor(
    candidate: string,
    why: string,
    readonly detail: readonly string[] = [],
  ) {
    super('eval-command', why, { file: candidate });
  }
}

/** True when `a` ranks strictly better than `b` on `metric`; a NaN ranks last. */
export function ranksBetter(a: Metrics, b: Metrics, metric: string, direction: 'max' | 'min'): boolean {
  const x = a[metric];
  const y = b[metric];
  if (Number.isNaN(y)) return !Number.isNaN(x);
  return direction === 'max' ? x > y : x < y;
}

/** Scores one candidate, turning a `CandidateFailed` into a failed outcome. */
export function outcomeOf(scorer: Scorer, vector: WeightVector): Promise<Outcome> {
  return settle(() => scorer.score(vector), performance.now());
}

/**
 * The metrics `score` gives, or the `CandidateFailed` it throws as a failed outcome (any other
 * error is thrown); `ms` counts from `t0`, which may lie before the call (work shared by a batch).
 */
export async function settle(score: () => Promise<Metrics>, t0: number): Promise<Outcome> {
  try {
    return { metrics: await score(), ms: performance.now() - t0 };
  } catch (e) {
    if (e instanceof CandidateFailed) return { failed: e.message, ms: performance.now() - t0 };
    throw e;
  }
}

/** Scores every vector, one at a time or as the scorer batches them; `onOutcome` as each finishes. */
export async function scoreEach(
  scorer: Scorer,
  vectors: readonly WeightVector[],
  onOutcome: (index: number, outcome: Outcome) => void,
): Promise<void> {
  if (scorer.scoreAll !== undefined) return scorer.scoreAll(vectors, onOutcome);
  for (const [i, v] of vectors.entries()) onOutcome(i, await outcomeOf(scorer, v));
}
