/**
 * `sweep-window` as a library call: score every candidate average of a run with one evaluator,
 * rank them, and optionally write the winner (as `merge` would) and a ready-to-serve ONNX.
 */
import { mergeToOutput } from '../engine/merge.js';
import { checkpointInputs, guardOutputs, type GuardedOutput } from '../io/output-guard.js';
import type { WritableFloat } from '../io/safetensors/dtype.js';
import { greedySoup } from '../recipes/greedy-soup.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import { checkCompatible } from '../series/compatible.js';
import { discoverSeries } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';
import { candidateGrid, touchedSteps, type GridOptions } from './candidates.js';
import { evaluationInputs } from './inputs.js';
import { Evaluator, type EvaluatorOptions } from './evaluator.js';
import type { Metrics } from './metrics.js';

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
  /**
   * Files the caller writes after the sweep (report, chart, page): checked with the sweep's own
   * outputs against every input before anything is scored or written.
   */
  readonly reportFiles?: readonly GuardedOutput[];
  /** Lines for the user as soon as they are known (device, engine, data matching). */
  readonly onNote?: (line: string) => void;
  readonly onProgress?: (done: number, total: number, candidate: string) => void;
}

export interface CandidateResult {
  readonly name: string;
  readonly method: string;
  readonly params: Readonly<Record<string, number | string>>;
  /** The steps the average reads, and their weights. */
  readonly steps: readonly number[];
  readonly weights: readonly number[];
  readonly metrics: Metrics;
  /** Milliseconds scoring it took (set by sweepWindow; optional for reports built by hand). */
  readonly ms?: number;
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
  readonly candidates: readonly CandidateResult[];
  readonly baseline: string;
  readonly best: string;
  readonly written?: readonly string[];
}

function result(v: WeightVector, metrics: Metrics, ms: number): CandidateResult {
  const used = v.steps.map((s, i) => [s, v.weights[i]] as const).filter(([, w]) => w > 0);
  return { name: v.name, method: v.method, params: v.params, steps: used.map(([s]) => s), weights: used.map(([, w]) => w), metrics, ms: Math.round(ms) };
}

/** The median, robust to the first candidate's one-off cost (shader compilation on WebGPU). */
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function sweepWindow(opts: SweepOptions): Promise<SweepReport> {
  const note = opts.onNote ?? (() => undefined);
  const series = await discoverSeries(opts.inputs);
  const selected = selectCheckpoints(series.checkpoints, opts.selection ?? {});
  checkCompatible(selected);
  const steps = selected.map((c) => c.step);
  const grid = candidateGrid(steps, opts.grid);
  grid.notes.forEach(note);
  const evaluator = await Evaluator.create({ ...opts, checkpoints: selected, series: series.checkpoints, steps: touchedSteps(grid.candidates).concat(opts.greedy ? steps.slice(-opts.greedy) : []) });
  const results: CandidateResult[] = [];
  let bestIndex = 0;
  try {
    const outputs = [
      ...(opts.writeBest ? [{ path: opts.writeBest.output, role: 'output (--write-best)' }] : []),
      ...(opts.emitOnnx ? [{ path: opts.emitOnnx.output, role: 'ONNX output (--emit-onnx)' }] : []),
      ...(opts.reportFiles ?? []),
    ];
    const inputs = [...checkpointInputs(series.checkpoints), ...await evaluationInputs(evaluator.model, opts.data)];
    await guardOutputs(outputs, inputs);
    evaluator.deviceNotes.forEach((n) => note(n));
    note(`device ${evaluator.device}; engine ${evaluator.engineReason}`);
    evaluator.data.notes.forEach(note);
    for (const u of evaluator.binding.unmapped) note(`scoring "${u.initializer}" as exported (--allow-unmapped): ${u.why}`);
    for (const [i, v] of grid.candidates.entries()) {
      opts.onProgress?.(i, grid.candidates.length, v.name);
      const t0 = performance.now();
      const metrics = await evaluator.score(v);
      results.push(result(v, metrics, performance.now() - t0));
      if (i > 0 && evaluator.better(results[i].metrics, results[bestIndex].metrics)) bestIndex = i;
    }
    const candidates = [...grid.candidates];
    if (opts.greedy !== undefined) {
      // The soup picks its members on the data it is then scored on: its score is optimistic.
      opts.onProgress?.(candidates.length, candidates.length + 1, `greedy-soup-${opts.greedy}`);
      const t0 = performance.now();
      const soup = await greedySoup(steps, opts.greedy, (v) => evaluator.score(v), (a, b) => evaluator.better(a, b));
      candidates.push(soup.vector);
      results.push(result(soup.vector, soup.score, performance.now() - t0));
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
      engine_reason: evaluator.engineReason, setup_ms: Math.round(evaluator.setupMs), ms_per_candidate: Math.round(median(results.map((c) => c.ms!))), candidates: results, baseline: results[0].name, best: results[bestIndex].name,
      ...(written.length > 0 ? { written } : {}),
    };
  } finally {
    await evaluator.close();
  }
}
