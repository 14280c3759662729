/**
 * `sweep-window`, the whole job: score every candidate average of a run with one scorer (the
 * onnxruntime evaluator, or the user's command), rank them, and write what was asked for: the
 * winner (as `merge` would), a ready-to-serve ONNX, the chart, the page and the JSON report.
 */
import { allRows, BOOTSTRAP, hasRowValues, holdoutSplit, marginOver } from '../analysis/bootstrap.js';
import {
  candidateResult,
  median,
  type CandidateResult,
  type SweepMargin,
  type SweepReport,
} from '../analysis/sweep-report.js';
import { AvgCkptError } from '../errors.js';
import { mergeToOutput } from '../engine/merge.js';
import type { PartSpec } from '../engine/parts.js';
import { candidateGrid, touchedSteps, type GridOptions } from '../eval/candidates.js';
import type { Evaluator } from '../eval/evaluator.js';
import { metricsOver, type Metrics, type PerExample } from '../eval/metrics.js';
import { CandidateFailed, scoreEach } from '../eval/scorer.js';
import { isS3Path } from '../io/storage/s3-location.js';
import { checkpointInputs, guardOutputs } from '../io/output-guard.js';
import { externalDataPath } from '../io/onnx/model-writer.js';
import type { WritableFloat } from '../io/dtype.js';
import { greedySoup } from '../recipes/greedy-soup.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import { writeSweepOutputs } from '../report/sweep-outputs.js';
import { writeReportFile } from '../report/write.js';
import { checkCompatible } from '../series/compatible.js';
import type { OpenOptions } from '../io/formats/format.js';
import { discoverSeries } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';
import { checkReportNames, reportOutputs, type ReportFiles } from './report-files.js';
import { checkSomeScored, openScorer, orWorst, scoringInputs, type ScoringChoice } from './scoring.js';

export interface SweepOptions extends ScoringChoice {
  readonly inputs: readonly string[];
  /** How checkpoint files are opened (`--key`). */
  readonly open?: OpenOptions;
  readonly selection?: SelectionOptions;
  readonly grid?: GridOptions;
  /** Score only every N-th candidate from the I-th (a part of a sweep split over processes). */
  readonly candidatesPart?: PartSpec;
  /** Also build a greedy soup over the K newest checkpoints (Wortsman et al. 2022). */
  readonly greedy?: number;
  /**
   * Hold out this share of the validation rows (0 < F < 1): the winner (and a greedy soup's
   * members) are chosen on the other rows, and every number reported is on the held-out ones
   * (ONNX scoring only: a command reports no per-row values).
   */
  readonly holdout?: number;
  /** Write the winner here, exactly as `merge` would. */
  readonly writeBest?: { readonly output: string; readonly force?: boolean; readonly dtype?: WritableFloat };
  /** Write the graph with the winner's weights baked in (ONNX scoring only). */
  readonly emitOnnx?: { readonly output: string; readonly force?: boolean };
  /** Files to write: the JSON report, the SVG chart, the HTML page (checked against every input before scoring). */
  readonly outputs?: ReportFiles;
  /** Lines for the user as soon as they are known (device, engine, data matching). */
  readonly onNote?: (line: string) => void;
  readonly onProgress?: (done: number, total: number, candidate: string) => void;
}

/** Scores the grid; writes the winner, the ONNX, chart, page and report asked for; `written` lists them (not the report). */
export async function sweepWindow(opts: SweepOptions): Promise<SweepReport> {
  const scored = await scoreSweep(opts);
  const outputs = await writeSweepOutputs(scored, {
    inputs: opts.inputs,
    selection: opts.selection ?? {},
    plot: opts.outputs?.plot,
    html: opts.outputs?.html,
  });
  const written = [...(scored.written ?? []), ...outputs];
  const report = written.length > 0 ? { ...scored, written } : scored;
  if (opts.outputs?.report !== undefined)
    await writeReportFile(opts.outputs.report, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

async function scoreSweep(opts: SweepOptions): Promise<SweepReport> {
  const note = opts.onNote ?? (() => undefined);
  const series = await discoverSeries(opts.inputs, { open: opts.open });
  series.notes.forEach(note);
  const selected = selectCheckpoints(series.checkpoints, opts.selection ?? {});
  checkCompatible(selected);
  const steps = selected.map((c) => c.step);
  const full = candidateGrid(steps, opts.grid);
  full.notes.forEach(note);
  // a part of a split sweep scores every N-th candidate from the I-th; `report merge` ranks them all
  const part = opts.candidatesPart;
  if (part !== undefined) checkPartOptions(opts, part, full.candidates.length);
  const positions = full.candidates.map((_, i) => i).filter((i) => part === undefined || i % part.count === part.index);
  const grid = { ...full, candidates: positions.map((i) => full.candidates[i]) };
  const outputs = [
    ...(opts.writeBest ? [{ path: opts.writeBest.output, role: 'output (--write-best)' }] : []),
    ...(opts.emitOnnx
      ? [
          { path: opts.emitOnnx.output, role: 'ONNX output (--emit-onnx)' },
          // written past 2 GiB only, but guarded always: neither file may replace an input
          { path: externalDataPath(opts.emitOnnx.output), role: 'external data of the ONNX output (--emit-onnx)' },
        ]
      : []),
    ...reportOutputs(opts.outputs),
  ];
  // onnxruntime writes and reads graphs as local files only: refuse rather than make a folder named `s3:`
  if (opts.emitOnnx !== undefined && isS3Path(opts.emitOnnx.output))
    throw new AvgCkptError('usage', `--emit-onnx ${opts.emitOnnx.output}: the ONNX output must be a local path`);
  if (opts.evalCommand !== undefined) {
    if (opts.emitOnnx)
      throw new AvgCkptError(
        'usage',
        '--emit-onnx needs --onnx: with --eval-cmd there is no graph to bake the winner into',
      );
    if (opts.holdout !== undefined)
      throw new AvgCkptError(
        'usage',
        '--holdout needs --onnx: an evaluation command reports no per-row values to split',
      );
  }
  await guardOutputs(outputs, [...checkpointInputs(series.checkpoints), ...(await scoringInputs(opts))]);
  checkReportNames(opts.outputs);
  const {
    scorer,
    evaluator,
    inputs: read,
  } = await openScorer(opts, {
    selected,
    series: series.checkpoints,
    steps: touchedSteps(grid.candidates).concat(opts.greedy ? steps.slice(-opts.greedy) : []),
    candidates: grid.candidates,
    dtype: opts.writeBest?.dtype,
    onNote: note,
  });
  const results: CandidateResult[] = [];
  const ms: number[] = [];
  let bestIndex = -1;
  try {
    const inputs = [...checkpointInputs(series.checkpoints), ...read];
    await guardOutputs(outputs, inputs);
    scorer.notes.forEach(note);
    const split =
      opts.holdout === undefined || evaluator === undefined
        ? undefined
        : holdoutSplit(evaluator.data.rows, checkHoldout(opts.holdout, evaluator));
    if (split !== undefined)
      note(
        `--holdout ${opts.holdout}: the winner is chosen on ${split.choose.length} validation rows, every number reported is on the other ${split.report.length}`,
      );
    /** Scores a vector: the metrics that rank it (the choosing rows) and those reported (the held-out rows); per row with onnxruntime. */
    const scoreBoth = async (v: WeightVector): Promise<Scored> => {
      if (evaluator === undefined) {
        const metrics = await scorer.score(v);
        return { chosen: metrics, reported: metrics };
      }
      const { metrics, perExample } = await evaluator.scoreRows(v);
      if (split === undefined) return { chosen: metrics, reported: metrics, perExample };
      return {
        chosen: metricsOver(evaluator.metrics, perExample, split.choose),
        reported: metricsOver(evaluator.metrics, perExample, split.report),
        perExample,
      };
    };
    const chosen: Metrics[] = [];
    const perRow: (PerExample | undefined)[] = [];
    const record = (v: WeightVector, r: Scored | { failed: string }, t: number, optimistic: boolean) => {
      ms.push(t);
      if ('failed' in r) {
        chosen.push({});
        perRow.push(undefined);
        results.push(candidateResult(v, { failed: r.failed, ms: t }));
        return;
      }
      chosen.push(r.chosen);
      perRow.push(r.perExample);
      results.push(
        candidateResult(
          v,
          { metrics: r.reported, ms: t },
          { ...(optimistic ? { optimistic } : {}), ...(split ? { choice_metrics: r.chosen } : {}) },
        ),
      );
      if (bestIndex < 0 || scorer.better(r.chosen, chosen[bestIndex])) bestIndex = results.length - 1;
    };
    /** A candidate's scores, or why its command failed (the others go on). */
    const attempt = async (v: WeightVector) => {
      const t0 = performance.now();
      try {
        return { r: (await scoreBoth(v)) as Scored | { failed: string }, t: performance.now() - t0 };
      } catch (e) {
        if (e instanceof CandidateFailed) return { r: { failed: e.message }, t: performance.now() - t0 };
        throw e;
      }
    };
    // results are recorded in grid order whatever order they finish in, so ties go to the earlier
    const outcomes: Awaited<ReturnType<typeof attempt>>[] = [];
    let done = 0;
    const finished = (i: number, outcome: Awaited<ReturnType<typeof attempt>>) => {
      outcomes[i] = outcome;
      opts.onProgress?.(++done, grid.candidates.length, grid.candidates[i].name);
    };
    opts.onProgress?.(0, grid.candidates.length, grid.candidates[0].name);
    if (evaluator === undefined) {
      // a command scores its candidates in batches of --jobs, each batch written in one pass over the run
      await scoreEach(scorer, grid.candidates, (i, o) =>
        finished(i, { r: 'metrics' in o ? { chosen: o.metrics, reported: o.metrics } : { failed: o.failed }, t: o.ms }),
      );
    } else {
      for (const [i, v] of grid.candidates.entries()) finished(i, await attempt(v));
    }
    for (const [i, v] of grid.candidates.entries()) record(v, outcomes[i].r, outcomes[i].t, false);
    const candidates = [...grid.candidates];
    if (opts.greedy !== undefined) {
      // Without --holdout the soup picks its members on the data it is then scored on: its score is optimistic.
      opts.onProgress?.(candidates.length, candidates.length + 1, `greedy-soup-${opts.greedy}`);
      const t0 = performance.now();
      const failures = new WeakSet<Metrics>();
      const soup = await greedySoup(
        steps,
        opts.greedy,
        orWorst(scorer.rankMetric, failures, async (v) => (await scoreBoth(v)).chosen),
        (a, b) => scorer.better(a, b),
      );
      candidates.push(soup.vector);
      // onnxruntime scores the soup once more for its per-row values; a command's score is kept (an evaluation may take hours)
      const final =
        evaluator !== undefined
          ? (await attempt(soup.vector)).r
          : failures.has(soup.score)
            ? { failed: 'no member of the soup could be scored' }
            : { chosen: soup.score, reported: soup.score };
      record(soup.vector, final, performance.now() - t0, split === undefined);
    }
    opts.onProgress?.(candidates.length, candidates.length, '');
    checkSomeScored(results, 'candidate');
    const margin =
      evaluator === undefined || part !== undefined
        ? undefined
        : sweepMargin(
            scorer.rankMetric,
            results.map((r) => r.name),
            chosen,
            perRow as PerExample[],
            bestIndex,
            (a, b) => scorer.better(a, b),
            split?.report ?? allRows(evaluator.data.rows),
          );
    const winner = candidates[bestIndex];
    const written: string[] = [];
    if (opts.emitOnnx && evaluator !== undefined) {
      written.push(...(await evaluator.writeOnnx(winner, opts.emitOnnx.output, opts.emitOnnx.force)));
    }
    if (opts.writeBest) {
      const merged = await mergeToOutput(selected, winner, {
        output: opts.writeBest.output,
        force: opts.writeBest.force,
        dtype: opts.writeBest.dtype,
        inputs,
      });
      written.push(merged.output);
    }
    return {
      metric: scorer.rankMetric,
      direction: scorer.direction,
      device: scorer.device,
      engine: scorer.engineKind,
      engine_reason: scorer.engineReason,
      setup_ms: Math.round(scorer.setupMs),
      ms_per_candidate: Math.round(median(ms)),
      checkpoints: selected.map((c) => ({ step: c.step, path: c.path })),
      candidates: results,
      baseline: results[0].name,
      best: results[bestIndex].name,
      ...(written.length > 0 ? { written } : {}),
      ...(scorer.unmapped !== undefined ? { unmapped: scorer.unmapped } : {}),
      ...(margin === undefined ? {} : { margin }),
      ...(split === undefined
        ? {}
        : {
            holdout: {
              fraction: opts.holdout!,
              seed: BOOTSTRAP.seed,
              choose_rows: split.choose.length,
              report_rows: split.report.length,
            },
          }),
      ...(part === undefined
        ? {}
        : { part: { index: part.index, count: part.count, candidates: positions, of: full.candidates.length } }),
    };
  } finally {
    await scorer.close();
  }
}

/** What ranks a candidate and what is reported of it (the same without --holdout); per-row values with onnxruntime. */
interface Scored {
  readonly chosen: Metrics;
  readonly reported: Metrics;
  readonly perExample?: PerExample;
}

/** A part scores candidates only: what needs every candidate's score comes after `report merge`. */
function checkPartOptions(opts: SweepOptions, part: PartSpec, total: number): void {
  const whole = [
    ['--greedy', opts.greedy],
    ['--write-best', opts.writeBest],
    ['--emit-onnx', opts.emitOnnx],
    ['--plot', opts.outputs?.plot],
    ['--html', opts.outputs?.html],
  ] as const;
  const used = whole.filter(([, v]) => v !== undefined).map(([flag]) => flag);
  if (used.length > 0)
    throw new AvgCkptError(
      'usage',
      `--candidates-part scores a share of the candidates; ${used.join(', ')} need${used.length > 1 ? '' : 's'} them all: use --report, then avg-ckpt report merge`,
    );
  if (part.index >= total)
    throw new AvgCkptError(
      'usage',
      `--candidates-part ${part.index}/${part.count}: the sweep has only ${total} candidates, so this part would score none`,
    );
}

/** --holdout needs a share strictly between 0 and 1, two rows at least, and per-row values of the ranking metric. */
function checkHoldout(fraction: number, evaluator: Evaluator): number {
  if (!(fraction > 0 && fraction < 1))
    throw new AvgCkptError(
      'usage',
      `--holdout takes the share of validation rows to hold out, between 0 and 1 (e.g. 0.5), got ${fraction}`,
    );
  if (evaluator.data.rows < 2)
    throw new AvgCkptError('usage', `--holdout needs at least 2 validation rows, the data has ${evaluator.data.rows}`);
  if (evaluator.metrics.some((m) => m.startsWith('output:')))
    throw new AvgCkptError(
      'usage',
      '--holdout splits the validation rows, which a graph output of one number per batch (--metric output:NAME) cannot follow',
    );
  return fraction;
}

/**
 * The winner's margin over the baseline and over the runner-up (the best of the others on the
 * choosing rows), by a paired bootstrap over `rows`; undefined when the metric has no per-row values.
 */
function sweepMargin(
  metric: string,
  names: readonly string[],
  chosen: readonly Metrics[],
  perRow: readonly PerExample[],
  best: number,
  better: (a: Metrics, b: Metrics) => boolean,
  rows: Int32Array,
): SweepMargin | undefined {
  if (!hasRowValues(metric, perRow[best])) return undefined;
  let runnerUp = -1;
  for (let i = 0; i < names.length; i++)
    if (i !== best && (runnerUp < 0 || better(chosen[i], chosen[runnerUp]))) runnerUp = i;
  const over = (i: number) => marginOver(metric, names[i], perRow[best], perRow[i], rows);
  return {
    metric,
    resamples: BOOTSTRAP.resamples,
    seed: BOOTSTRAP.seed,
    level: BOOTSTRAP.level,
    rows: rows.length,
    ...(best !== 0 ? { over_baseline: over(0) } : {}),
    ...(runnerUp >= 0 ? { over_runner_up: over(runnerUp) } : {}),
  };
}
