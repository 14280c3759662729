/**
 * What a sweep found: every candidate's recipe and metrics, the baseline and the winner, and the
 * checkpoints of the selection (so the outputs that follow never discover the run again).
 */
import type { MarginInterval } from './bootstrap.js';
import type { ExportedInitializer } from '../eval/binding.js';
import type { Metrics } from '../eval/metrics.js';
import type { Outcome } from '../eval/scorer.js';
import type { WeightVector } from '../recipes/weight-vector.js';

export interface CandidateResult {
  readonly name: string;
  readonly method: string;
  readonly params: Readonly<Record<string, number | string>>;
  /** The steps the average reads, and their weights. */
  readonly steps: readonly number[];
  readonly weights: readonly number[];
  /** Empty when the candidate failed to score. */
  readonly metrics: Metrics;
  /** Why it has no metrics (its evaluation command failed, --eval-cmd): one line. */
  readonly failed?: string;
  /** Milliseconds scoring it took (set by sweepWindow; optional for reports built by hand). */
  readonly ms?: number;
  /** True for a greedy soup that chose its members on the rows it is scored on: its score flatters it. */
  readonly optimistic?: boolean;
  /** With --holdout: the metrics on the rows that chose the winner (`metrics` are on the held-out rows). */
  readonly choice_metrics?: Metrics;
}

/** How sure the pick is: paired bootstrap intervals of the winner's margin in the ranking metric. */
export interface SweepMargin {
  readonly metric: string;
  readonly resamples: number;
  readonly seed: number;
  /** Coverage of the intervals, e.g. 0.95. */
  readonly level: number;
  /** The rows resampled: all validation rows, or the held-out ones. */
  readonly rows: number;
  /** Absent when the winner is the baseline. */
  readonly over_baseline?: MarginInterval;
  /** Absent when there is only one candidate. */
  readonly over_runner_up?: MarginInterval;
}

/** --holdout: the winner is chosen on `choose_rows` rows, every number reported is on the other `report_rows`. */
export interface HoldoutSplit {
  readonly fraction: number;
  readonly seed: number;
  readonly choose_rows: number;
  readonly report_rows: number;
}

/** A checkpoint of the selection: its step and where it is. */
export interface SelectedCheckpoint {
  readonly step: number;
  readonly path: string;
}

/** Which candidates a part of a split sweep scored (sweep-window --candidates-part I/N). */
export interface SweepPart {
  readonly index: number;
  readonly count: number;
  /** Grid positions of this part's candidates, in `candidates` order. */
  readonly candidates: readonly number[];
  /** Candidates in the whole grid. */
  readonly of: number;
}

export interface SweepReport {
  readonly metric: string;
  readonly direction: 'max' | 'min';
  readonly device: string;
  readonly engine: string;
  readonly engine_reason: string;
  /** Milliseconds creating the engine, and the median per candidate (set by sweepWindow). */
  readonly setup_ms?: number;
  readonly ms_per_candidate?: number;
  /** The selected checkpoints in step order: the steps every candidate's weights refer to. */
  readonly checkpoints: readonly SelectedCheckpoint[];
  readonly candidates: readonly CandidateResult[];
  readonly baseline: string;
  readonly best: string;
  readonly written?: readonly string[];
  /** Absent when the ranking metric has no per-row values (a graph output that is one number per batch). */
  readonly margin?: SweepMargin;
  readonly holdout?: HoldoutSplit;
  /** Float initializers no checkpoint supplies, scored as exported in every candidate (--allow-unmapped). */
  readonly unmapped?: readonly ExportedInitializer[];
  /** Present in a part's report: merge the parts with `avg-ckpt report merge`. */
  readonly part?: SweepPart;
}

/** A scored (or failed) vector as the report keeps it: only the steps with weight. */
export function candidateResult(
  v: WeightVector,
  outcome: Outcome,
  extra: Pick<CandidateResult, 'optimistic' | 'choice_metrics'> = {},
): CandidateResult {
  const used = v.steps.map((s, i) => [s, v.weights[i]] as const).filter(([, w]) => w > 0);
  const scored = 'metrics' in outcome ? { metrics: outcome.metrics } : { metrics: {}, failed: outcome.failed };
  return {
    name: v.name,
    method: v.method,
    params: v.params,
    steps: used.map(([s]) => s),
    weights: used.map(([, w]) => w),
    ...scored,
    ms: Math.round(outcome.ms),
    ...extra,
  };
}

/** The median, robust to the first candidate's one-off cost (shader compilation on WebGPU). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}
