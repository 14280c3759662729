/**
 * How `sweep-window` and `curve` score: with onnxruntime (`--onnx` and validation data) or with
 * the user's own command (`--eval-cmd`). Both give a `Scorer`; onnxruntime is imported only on
 * its own path, so a command-scored sweep never loads its native libraries.
 */
import { AvgCkptError } from '../errors.js';
import { CommandScorer } from '../eval/command-scorer.js';
import type { Evaluator, EvaluatorOptions } from '../eval/evaluator.js';
import type { Metrics } from '../eval/metrics.js';
import { evaluationInputs } from '../eval/inputs.js';
import { CandidateFailed, type Scorer } from '../eval/scorer.js';
import type { GuardedInput } from '../io/output-guard.js';
import type { WritableFloat } from '../io/dtype.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';

/** `--eval-cmd` and the options that go with it. */
export interface EvalCommandOptions {
  /** The template: `python eval.py --model {path}`; `{path}`, `{name}`, `{step}` substituted per word. */
  readonly command: string;
  /** Run it with /bin/sh -c (default: no shell, the template split into words). */
  readonly shell?: boolean;
  /** Where candidates are written (default: the OS temporary folder). */
  readonly scratch?: string;
  /** Candidates evaluated at once (default 1): each holds one model on disk, and the command's own memory. */
  readonly jobs?: number;
  /** Seconds one evaluation may take. */
  readonly timeoutSeconds?: number;
  /** Keep the candidates in the scratch folder. */
  readonly keep?: boolean;
}

type OnnxScoring = Omit<EvaluatorOptions, 'checkpoints' | 'steps' | 'series'>;

/** onnxruntime's options (`onnx` and `data` at least), or an evaluation command (with the metric and its direction). */
/** `threads`: for onnxruntime's averages and operators, or for writing a command's candidates. */
export interface ScoringChoice extends Partial<OnnxScoring> {
  readonly evalCommand?: EvalCommandOptions;
}

/** The options of ONNX scoring, refusing a call that gives neither a graph and data nor a command. */
function onnxScoring(
  opts: ScoringChoice,
): OnnxScoring & { readonly onnx: string; readonly data: NonNullable<OnnxScoring['data']> } {
  if (opts.onnx === undefined || opts.data === undefined)
    throw new AvgCkptError('usage', 'nothing to score with: give onnx and data, or evalCommand');
  return { ...opts, onnx: opts.onnx, data: opts.data };
}

export interface ScorerContext {
  /** The selection, oldest first, and the whole run (to find the checkpoint an ONNX graph came from). */
  readonly selected: readonly Checkpoint[];
  readonly series: readonly Checkpoint[];
  /** Steps the candidates read (the mixture stacks only these). */
  readonly steps?: readonly number[];
  /** The candidates to score, for the ONNX engine choice's cost model. */
  readonly candidates?: readonly WeightVector[];
  /** dtype the candidates are written in for a command (as --write-best would write them). */
  readonly dtype?: WritableFloat;
  readonly onNote?: (line: string) => void;
}

/** The files scoring reads that are known before it starts (the ONNX model, the data), for the output guard. */
export async function scoringInputs(opts: ScoringChoice): Promise<GuardedInput[]> {
  if (opts.evalCommand !== undefined) return [];
  const o = onnxScoring(opts);
  return evaluationInputs(o.onnx, o.data);
}

/**
 * The scorer, and every file it reads (with an ONNX model's external data, known once it is
 * loaded); `evaluator` is the scorer too when it is onnxruntime's (per-row values, --emit-onnx).
 */
export async function openScorer(
  opts: ScoringChoice,
  ctx: ScorerContext,
): Promise<{ scorer: Scorer; evaluator?: Evaluator; inputs: GuardedInput[] }> {
  if (opts.evalCommand !== undefined) {
    const c = opts.evalCommand;
    const scorer = await CommandScorer.create({
      command: c.command,
      shell: c.shell,
      scratch: c.scratch,
      jobs: c.jobs,
      timeoutSeconds: c.timeoutSeconds,
      keep: c.keep,
      checkpoints: ctx.selected,
      metric: opts.metric,
      direction: opts.direction,
      dtype: ctx.dtype,
      threads: opts.threads,
      onNote: ctx.onNote,
    });
    return { scorer, inputs: [] };
  }
  // onnxruntime's native libraries take a second to load, and a command-scored run never needs them
  const o = onnxScoring(opts);
  const { Evaluator } = await import('../eval/evaluator.js');
  const evaluator = await Evaluator.create({
    ...o,
    checkpoints: ctx.selected,
    series: ctx.series,
    steps: ctx.steps,
    candidates: ctx.candidates,
  });
  try {
    return { scorer: evaluator, evaluator, inputs: await evaluationInputs(o.onnx, o.data, evaluator.model) };
  } catch (e) {
    await evaluator.close();
    throw e;
  }
}

/** `score` for callers that need metrics for every vector (greedy soup): a failed candidate ranks last (NaN). */
export function orWorst(
  rank: string,
  failures: WeakSet<Metrics>,
  score: (v: WeightVector) => Promise<Metrics>,
): (v: WeightVector) => Promise<Metrics> {
  return async (v) => {
    try {
      return await score(v);
    } catch (e) {
      if (!(e instanceof CandidateFailed)) throw e;
      const worst = { [rank]: NaN };
      failures.add(worst);
      return worst;
    }
  };
}

/** Refuses a run where nothing could be scored: there is nothing to rank or report. */
export function checkSomeScored(outcomes: readonly ({ failed?: string } | undefined)[], what: string): void {
  const failed = outcomes.filter((o) => o?.failed !== undefined);
  if (failed.length > 0 && failed.length === outcomes.length) {
    throw new AvgCkptError(
      'eval-command',
      `every ${what} failed to score (${failed.length} of ${outcomes.length}; the first: ${failed[0]!.failed}); see the lines above`,
    );
  }
}
