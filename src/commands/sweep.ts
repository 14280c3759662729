/**
 * `sweep-window`, the whole job: score every candidate average of a run with one evaluator, rank
 * them, and write what was asked for: the winner (as `merge` would), a ready-to-serve ONNX, the
 * chart, the page and the JSON report.
 */
import { candidateResult, median, type CandidateResult, type SweepReport } from '../analysis/sweep-report.js';
import { mergeToOutput } from '../engine/merge.js';
import { exportedInitializers } from '../eval/binding.js';
import { candidateGrid, touchedSteps, type GridOptions } from '../eval/candidates.js';
import { Evaluator, type EvaluatorOptions } from '../eval/evaluator.js';
import { evaluationInputs } from '../eval/inputs.js';
import { checkpointInputs, guardOutputs } from '../io/output-guard.js';
import type { WritableFloat } from '../io/dtype.js';
import { greedySoup } from '../recipes/greedy-soup.js';
import { writeSweepOutputs } from '../report/sweep-outputs.js';
import { writeReportFile } from '../report/write.js';
import { checkCompatible } from '../series/compatible.js';
import { discoverSeries } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';
import { reportOutputs, type ReportFiles } from './report-files.js';

export interface SweepOptions extends Omit<EvaluatorOptions, 'checkpoints' | 'steps' | 'series'> {
  readonly inputs: readonly string[];
  readonly selection?: SelectionOptions;
  readonly grid?: GridOptions;
  /** Also build a greedy soup over the K newest checkpoints (Wortsman et al. 2022). */
  readonly greedy?: number;
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
  const series = await discoverSeries(opts.inputs);
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
    for (const [i, v] of grid.candidates.entries()) {
      opts.onProgress?.(i, grid.candidates.length, v.name);
      const t0 = performance.now();
      const metrics = await evaluator.score(v);
      ms.push(performance.now() - t0);
      results.push(candidateResult(v, metrics, ms[i]));
      if (i > 0 && evaluator.better(results[i].metrics, results[bestIndex].metrics)) bestIndex = i;
    }
    const candidates = [...grid.candidates];
    if (opts.greedy !== undefined) {
      // The soup picks its members on the data it is then scored on: its score is optimistic.
      opts.onProgress?.(candidates.length, candidates.length + 1, `greedy-soup-${opts.greedy}`);
      const t0 = performance.now();
      const soup = await greedySoup(steps, opts.greedy, (v) => evaluator.score(v), (a, b) => evaluator.better(a, b));
      candidates.push(soup.vector);
      ms.push(performance.now() - t0);
      results.push(candidateResult(soup.vector, soup.score, ms[ms.length - 1]));
      if (evaluator.better(soup.score, results[bestIndex].metrics)) bestIndex = results.length - 1;
    }
    opts.onProgress?.(candidates.length, candidates.length, '');
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
    };
  } finally {
    await evaluator.close();
  }
}
