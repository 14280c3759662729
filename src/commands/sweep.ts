/**
 * `sweep-window`, the whole job: score every candidate average of a run with one evaluator, rank
 * them, and write what was asked for: the winner (as `merge` would), a ready-to-serve ONNX, the
 * chart, the page and the JSON report.
 */
import { BOOTSTRAP, holdoutSplit, marginOver } from '../analysis/bootstrap.js';
import { candidateResult, median, type CandidateResult, type SweepMargin, type SweepReport } from '../analysis/sweep-report.js';
import { AvgCkptError } from '../errors.js';
import { mergeToOutput } from '../engine/merge.js';
import { exportedInitializers } from '../eval/binding.js';
import { candidateGrid, touchedSteps, type GridOptions } from '../eval/candidates.js';
import { Evaluator, type EvaluatorOptions } from '../eval/evaluator.js';
import { evaluationInputs } from '../eval/inputs.js';
import { metricsOver, type Metrics, type PerExample } from '../eval/metrics.js';
import { checkpointInputs, guardOutputs } from '../io/output-guard.js';
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

export interface SweepOptions extends Omit<EvaluatorOptions, 'checkpoints' | 'steps' | 'series'> {
  readonly inputs: readonly string[];
  /** How checkpoint files are opened (`--key`). */
  readonly open?: OpenOptions;
  readonly selection?: SelectionOptions;
  readonly grid?: GridOptions;
  /** Also build a greedy soup over the K newest checkpoints (Wortsman et al. 2022). */
  readonly greedy?: number;
  /**
   * Hold out this share of the validation rows (0 < F < 1): the winner (and a greedy soup's
   * members) are chosen on the other rows, and every number reported is on the held-out ones.
   */
  readonly holdout?: number;
  /** Write the winner here, exactly as `merge` would. */
  readonly writeBest?: { readonly output: string; readonly force?: boolean; readonly dtype?: WritableFloat };
  /** Write the graph with the winner's weights baked in. */
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
  const outputs = await writeSweepOutputs(scored, { inputs: opts.inputs, selection: opts.selection ?? {}, plot: opts.outputs?.plot, html: opts.outputs?.html });
  const written = [...(scored.written ?? []), ...outputs];
  const report = written.length > 0 ? { ...scored, written } : scored;
  if (opts.outputs?.report !== undefined) await writeReportFile(opts.outputs.report, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

async function scoreSweep(opts: SweepOptions): Promise<SweepReport> {
  const note = opts.onNote ?? (() => undefined);
  const series = await discoverSeries(opts.inputs, { open: opts.open });
  series.notes.forEach(note);
  const selected = selectCheckpoints(series.checkpoints, opts.selection ?? {});
  checkCompatible(selected);
  const steps = selected.map((c) => c.step);
  const grid = candidateGrid(steps, opts.grid);
  grid.notes.forEach(note);
  const outputs = [
    ...(opts.writeBest ? [{ path: opts.writeBest.output, role: 'output (--write-best)' }] : []),
    ...(opts.emitOnnx ? [{ path: opts.emitOnnx.output, role: 'ONNX output (--emit-onnx)' }] : []),
    ...reportOutputs(opts.outputs),
  ];
  await guardOutputs(outputs, [...checkpointInputs(series.checkpoints), ...await evaluationInputs(opts.onnx, opts.data)]);
  checkReportNames(opts.outputs);
  const evaluator = await Evaluator.create({ ...opts, checkpoints: selected, series: series.checkpoints, steps: touchedSteps(grid.candidates).concat(opts.greedy ? steps.slice(-opts.greedy) : []) });
  const results: CandidateResult[] = [];
  const ms: number[] = [];
  let bestIndex = 0;
  try {
    const inputs = [...checkpointInputs(series.checkpoints), ...await evaluationInputs(opts.onnx, opts.data, evaluator.model)];
    await guardOutputs(outputs, inputs);
    evaluator.deviceNotes.forEach((n) => note(n));
    note(`device ${evaluator.device}; engine ${evaluator.engineReason}`);
    evaluator.data.notes.forEach(note);
    for (const u of evaluator.binding.unmapped) note(`scoring "${u.initializer}" as exported (--allow-unmapped): ${u.why}`);
    const split = opts.holdout === undefined ? undefined : holdoutSplit(evaluator.data.rows, checkHoldout(opts.holdout, evaluator));
    if (split !== undefined) note(`--holdout ${opts.holdout}: the winner is chosen on ${split.choose.length} validation rows, every number reported is on the other ${split.report.length}`);
    /** Scores a vector: the metrics that rank it (the choosing rows) and those reported (the held-out rows). */
    const scoreBoth = async (v: WeightVector) => {
      const { metrics, perExample } = await evaluator.scoreRows(v);
      if (split === undefined) return { chosen: metrics, reported: metrics, perExample };
      return { chosen: metricsOver(evaluator.metrics, perExample, split.choose), reported: metricsOver(evaluator.metrics, perExample, split.report), perExample };
    };
    const chosen: Metrics[] = [];
    const perRow: PerExample[] = [];
    const record = (v: WeightVector, r: Awaited<ReturnType<typeof scoreBoth>>, t: number, optimistic: boolean) => {
      ms.push(t);
      chosen.push(r.chosen);
      perRow.push(r.perExample);
      results.push(candidateResult(v, r.reported, t, { ...(optimistic ? { optimistic } : {}), ...(split ? { choice_metrics: r.chosen } : {}) }));
      if (results.length > 1 && evaluator.better(r.chosen, chosen[bestIndex])) bestIndex = results.length - 1;
    };
    for (const [i, v] of grid.candidates.entries()) {
      opts.onProgress?.(i, grid.candidates.length, v.name);
      const t0 = performance.now();
      record(v, await scoreBoth(v), performance.now() - t0, false);
    }
    const candidates = [...grid.candidates];
    if (opts.greedy !== undefined) {
      // Without --holdout the soup picks its members on the data it is then scored on: its score is optimistic.
      opts.onProgress?.(candidates.length, candidates.length + 1, `greedy-soup-${opts.greedy}`);
      const t0 = performance.now();
      const soup = await greedySoup(steps, opts.greedy, async (v) => (await scoreBoth(v)).chosen, (a, b) => evaluator.better(a, b));
      candidates.push(soup.vector);
      record(soup.vector, await scoreBoth(soup.vector), performance.now() - t0, split === undefined);
    }
    opts.onProgress?.(candidates.length, candidates.length, '');
    const margin = sweepMargin(evaluator.rankMetric, results.map((r) => r.name), chosen, perRow, bestIndex, (a, b) => evaluator.better(a, b), split?.report ?? allRows(evaluator.data.rows));
    const winner = candidates[bestIndex];
    const written: string[] = [];
    if (opts.emitOnnx) {
      await evaluator.writeOnnx(winner, opts.emitOnnx.output, opts.emitOnnx.force);
      written.push(opts.emitOnnx.output);
    }
    if (opts.writeBest) {
      const merged = await mergeToOutput(selected, winner, { output: opts.writeBest.output, force: opts.writeBest.force, dtype: opts.writeBest.dtype, inputs });
      written.push(merged.output);
    }
    return {
      metric: evaluator.rankMetric, direction: evaluator.direction, device: evaluator.device, engine: evaluator.engineKind,
      engine_reason: evaluator.engineReason, setup_ms: Math.round(evaluator.setupMs), ms_per_candidate: Math.round(median(ms)),
      checkpoints: selected.map((c) => ({ step: c.step, path: c.path })), candidates: results, baseline: results[0].name, best: results[bestIndex].name,
      ...(written.length > 0 ? { written } : {}),
      ...(evaluator.binding.unmapped.length > 0 ? { unmapped: exportedInitializers(evaluator.binding) } : {}),
      ...(margin === undefined ? {} : { margin }),
      ...(split === undefined ? {} : { holdout: { fraction: opts.holdout!, seed: BOOTSTRAP.seed, choose_rows: split.choose.length, report_rows: split.report.length } }),
    };
  } finally {
    await evaluator.close();
  }
}

function allRows(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/** --holdout needs a share strictly between 0 and 1, two rows at least, and per-row values of the ranking metric. */
function checkHoldout(fraction: number, evaluator: Evaluator): number {
  if (!(fraction > 0 && fraction < 1)) throw new AvgCkptError('usage', `--holdout takes the share of validation rows to hold out, between 0 and 1 (e.g. 0.5), got ${fraction}`);
  if (evaluator.data.rows < 2) throw new AvgCkptError('usage', `--holdout needs at least 2 validation rows, the data has ${evaluator.data.rows}`);
  if (evaluator.metrics.some((m) => m.startsWith('output:'))) throw new AvgCkptError('usage', '--holdout splits the validation rows, which a graph output of one number per batch (--metric output:NAME) cannot follow');
  return fraction;
}

/**
 * The winner's margin over the baseline and over the runner-up (the best of the others on the
 * choosing rows), by a paired bootstrap over `rows`; undefined when the metric has no per-row values.
 */
function sweepMargin(metric: string, names: readonly string[], chosen: readonly Metrics[], perRow: readonly PerExample[], best: number, better: (a: Metrics, b: Metrics) => boolean, rows: Int32Array): SweepMargin | undefined {
  const key = metric === 'perplexity' ? 'loss' : metric;
  if (perRow[best][key] === undefined) return undefined;
  let runnerUp = -1;
  for (let i = 0; i < names.length; i++) if (i !== best && (runnerUp < 0 || better(chosen[i], chosen[runnerUp]))) runnerUp = i;
  const over = (i: number) => marginOver(metric, names[i], perRow[best], perRow[i], rows);
  return {
    metric, resamples: BOOTSTRAP.resamples, seed: BOOTSTRAP.seed, level: BOOTSTRAP.level, rows: rows.length,
    ...(best !== 0 ? { over_baseline: over(0) } : {}),
    ...(runnerUp >= 0 ? { over_runner_up: over(runnerUp) } : {}),
  };
}
