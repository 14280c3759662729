/**
 * What `sweep-window` and `curve` need of whatever scores a candidate average: its metrics, which
 * metric ranks and in which direction, and a few words for the report. Two implementations:
 * the onnxruntime `Evaluator`, and the `CommandScorer` that runs the user's own evaluation
 * (`--eval-cmd`). This file must not import onnxruntime: the command path never loads it.
 */
import { AvgCkptError } from '../errors.js';
import type { WeightVector } from '../recipes/weight-vector.js';
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
  /**
   * The metrics of the average `vector` describes. Throws `CandidateFailed` when only this
   * candidate could not be scored (its command failed): the sweep goes on with the others.
   */
  score(vector: WeightVector): Promise<Metrics>;
  /** Scores several candidates, `onOutcome` called as each finishes (in any order); optional. */
  scoreAll?(vectors: readonly WeightVector[], onOutcome: (index: number, outcome: Outcome) => void): Promise<void>;
  close(): Promise<void>;
}

/** One candidate's score, or why it has none. */
export type Outcome =
  | { readonly metrics: Metrics; readonly ms: number }
  | { readonly failed: string; readonly ms: number };

/** A candidate that could not be scored; `detail`: lines shown below the message (the command's stderr). */
export class CandidateFailed extends AvgCkptError {
  constructor(candidate: string, why: string, readonly detail: readonly string[] = []) {
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
export async function outcomeOf(scorer: Scorer, vector: WeightVector): Promise<Outcome> {
  const t0 = performance.now();
  try {
    return { metrics: await scorer.score(vector), ms: performance.now() - t0 };
  } catch (e) {
    if (e instanceof CandidateFailed) return { failed: e.message, ms: performance.now() - t0 };
    throw e;
  }
}

/** Scores every vector: with the scorer's own `scoreAll` where it has one, else one at a time. */
export async function scoreEach(scorer: Scorer, vectors: readonly WeightVector[], onOutcome: (index: number, outcome: Outcome) => void): Promise<void> {
  if (scorer.scoreAll !== undefined) return scorer.scoreAll(vectors, onOutcome);
  for (const [i, v] of vectors.entries()) onOutcome(i, await outcomeOf(scorer, v));
}
