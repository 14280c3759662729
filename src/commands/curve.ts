/**
 * `curve`, the whole job: along the run, score the raw model and the LAWA / EMA averages that end
 * at each checkpoint with one scorer (with onnxruntime's mixture engine each point is one run; or
 * the user's evaluation command, --eval-cmd), measure
 * how many steps each average saves to reach a target, and write the JSON, chart and page asked for.
 */
import {
  CURVE_FAMILIES,
  curveIndexes,
  curveTimeToTarget,
  families,
  type CurveAverages,
  type CurveFamily,
  type CurvePoint,
  type CurveReport,
} from '../analysis/curve.js';
import { allRows } from '../analysis/bootstrap.js';
import { curveMargin, stepMargin, type CurveStepMargin, type StepScore } from '../analysis/curve-margin.js';
import { AvgCkptError } from '../errors.js';
import type { PerExample } from '../eval/metrics.js';
import { scoreEach, type Outcome } from '../eval/scorer.js';
import { checkpointInputs, guardOutputs } from '../io/output-guard.js';
import { writeCurveOutputs } from '../report/curve-report.js';
import { formatCommand } from '../report/recipe-command.js';
import { writeReportFile } from '../report/write.js';
import { checkCompatible } from '../series/compatible.js';
import type { OpenOptions } from '../io/formats/format.js';
import { discoverSeries } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';
import { checkReportNames, reportOutputs, type ReportFiles } from './report-files.js';
import { checkSomeScored, openScorer, scoringInputs, type ScoringChoice } from './scoring.js';

export type CurveOptions = CurveJob & ScoringChoice;

interface CurveJob {
  readonly inputs: readonly string[];
  /** How checkpoint files are opened (`--key`). */
  readonly open?: OpenOptions;
  /** The part of the run to look at (--from-step, --to-step). */
  readonly selection?: Pick<SelectionOptions, 'fromStep' | 'toStep'>;
  /**
   * The averages to follow, by family (recipes/registry.ts): `windows` (LAWA k, the k checkpoints
   * ending at each point), `ema` (decays per saved checkpoint, from the first selected one).
   */
  readonly averages?: CurveAverages;
  /** Evaluate at every N-th checkpoint, counted back from the newest (default 1: all). */
  readonly every?: number;
  /** The metric value to reach (default: the best value of the raw model). */
  readonly target?: number;
  /** Files to write: the JSON report, the SVG chart, the HTML page (checked against every input before scoring). */
  readonly outputs?: ReportFiles;
  readonly onNote?: (line: string) => void;
  readonly onProgress?: (done: number, total: number, what: string) => void;
}

/** The options that change the report, as the command line that makes it again. */
export function curveCommandLine(o: CurveOptions): string[] {
  const words = ['avg-ckpt', 'curve', ...o.inputs];
  const flag = (name: string, value: string | number | boolean | undefined) => {
    if (value === true) words.push(`--${name}`);
    else if (value !== undefined && value !== false) words.push(`--${name}`, String(value));
  };
  const list = (xs: readonly number[] | undefined) => (xs === undefined || xs.length === 0 ? undefined : xs.join(','));
  flag('onnx', o.onnx);
  flag('data', o.data?.dataDir);
  for (const [name, file] of Object.entries(o.data?.inputs ?? {})) flag('input', `${name}=${file}`);
  flag('labels', o.data?.labels);
  flag('batch-size', o.data?.batchSize === 256 ? undefined : o.data?.batchSize);
  flag('eval-cmd', o.evalCommand?.command);
  flag('shell', o.evalCommand?.shell);
  flag('jobs', o.evalCommand?.jobs === 1 ? undefined : o.evalCommand?.jobs);
  flag('eval-timeout', o.evalCommand?.timeoutSeconds);
  flag('metric', o.metric);
  flag('maximize', o.direction === 'max');
  flag('minimize', o.direction === 'min');
  for (const { curve } of CURVE_FAMILIES) flag(curve.flag, list(o.averages?.[curve.key]));
  flag('every', o.every);
  flag('from-step', o.selection?.fromStep);
  flag('to-step', o.selection?.toStep);
  flag('target', o.target);
  for (const rule of o.maps ?? []) flag('map', rule);
  flag('allow-unmapped', o.allowUnmapped);
  flag('engine', o.engine === 'auto' ? undefined : o.engine);
  flag('device', o.device === 'auto' ? undefined : o.device);
  return words;
}

/** Scores the curves; writes `outputs`; the report lists the chart and page it wrote. */
export async function curve(opts: CurveOptions): Promise<CurveReport> {
  const scored = await scoreCurve(opts);
  const written = await writeCurveOutputs(scored, {
    plot: opts.outputs?.plot,
    html: opts.outputs?.html,
    command: formatCommand(curveCommandLine(opts)),
    run: opts.inputs.join(' '),
  });
  const report = written.length > 0 ? { ...scored, written } : scored;
  if (opts.outputs?.report !== undefined)
    await writeReportFile(opts.outputs.report, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

async function scoreCurve(opts: CurveOptions): Promise<CurveReport> {
  const note = opts.onNote ?? (() => undefined);
  const averages = opts.averages ?? {};
  if (CURVE_FAMILIES.every(({ curve }) => (averages[curve.key] ?? []).length === 0)) {
    const options = CURVE_FAMILIES.map(({ curve }) => `--${curve.flag} ${curve.placeholder}`).join(' and/or ');
    throw new AvgCkptError('usage', `curve needs an average to compare with the raw model: ${options}`);
  }
  if (opts.target !== undefined && !Number.isFinite(opts.target))
    throw new AvgCkptError('usage', `--target must be a number, got ${opts.target}`);
  const series = await discoverSeries(opts.inputs, { open: opts.open });
  series.notes.forEach(note);
  const selected = selectCheckpoints(series.checkpoints, opts.selection ?? {});
  checkCompatible(selected);
  const steps = selected.map((c) => c.step);
  const fams = families(steps, averages);
  const indexes = curveIndexes(steps.length, opts.every);
  const jobs = indexes.flatMap((i) =>
    fams.flatMap((f, fi) => {
      const vector = f.at(i);
      return vector === undefined ? [] : [{ fi, step: steps[i], vector }];
    }),
  );

  await guardOutputs(reportOutputs(opts.outputs), [
    ...checkpointInputs(series.checkpoints),
    ...(await scoringInputs(opts)),
  ]);
  checkReportNames(opts.outputs);
  const { scorer, evaluator, inputs } = await openScorer(opts, {
    selected,
    series: series.checkpoints,
    candidates: jobs.map((j) => j.vector),
    onNote: note,
  });
  try {
    await guardOutputs(reportOutputs(opts.outputs), [...checkpointInputs(series.checkpoints), ...inputs]);
    scorer.notes.forEach(note);
    const scored: CurvePoint[] = [];
    let done = 0;
    // per-row values wait only until the last point of their step is in: memory is one step's, not the curve's
    const margins: CurveStepMargin[] = [];
    const waiting = new Map<number, { fi: number; score?: StepScore }[]>();
    const perStep = new Map<number, number>();
    for (const j of jobs) perStep.set(j.step, (perStep.get(j.step) ?? 0) + 1);
    const rows = evaluator === undefined ? undefined : allRows(evaluator.data.rows);
    const record = (n: number, o: Outcome, perExample?: PerExample) => {
      const { step, fi } = jobs[n];
      scored[n] = 'metrics' in o ? { step, metrics: o.metrics } : { step, metrics: {}, failed: o.failed };
      opts.onProgress?.(++done, jobs.length, `step ${step}`);
      if (rows === undefined) return;
      const at = [...(waiting.get(step) ?? []), { fi, score: perExample && stepScore(fams[fi], o, perExample) }];
      waiting.set(step, at);
      if (at.length < perStep.get(step)!) return;
      waiting.delete(step);
      const scores = at.sort((a, b) => a.fi - b.fi).flatMap((a) => (a.score === undefined ? [] : [a.score]));
      const m = stepMargin(step, scorer.rankMetric, scores, (a, b) => scorer.better(a, b), rows);
      if (m !== undefined) margins.push(m);
    };
    opts.onProgress?.(0, jobs.length, `step ${jobs[0]?.step}`);
    const vectors = jobs.map((j) => j.vector);
    if (evaluator === undefined) await scoreEach(scorer, vectors, (n, o) => record(n, o));
    else
      for (const [n, v] of vectors.entries()) {
        const t0 = performance.now();
        const { metrics, perExample } = await evaluator.scoreRows(v);
        record(n, { metrics, ms: performance.now() - t0 }, perExample);
      }
    checkSomeScored(scored, 'point of the curve');
    const margin = rows === undefined ? undefined : curveMargin(scorer.rankMetric, rows.length, margins);
    const points: CurvePoint[][] = fams.map((_, fi) => scored.filter((_, n) => jobs[n].fi === fi));
    const methods = fams.map((f, fi) => ({ name: f.name, method: f.method, params: f.params, points: points[fi] }));
    const { target, ttt } = curveTimeToTarget(methods, scorer.rankMetric, scorer.direction, opts.target);
    return {
      metric: scorer.rankMetric,
      direction: scorer.direction,
      device: scorer.device,
      engine: scorer.engineKind,
      engine_reason: scorer.engineReason,
      steps: indexes.map((i) => steps[i]),
      methods,
      target,
      time_to_target: ttt,
      ...(scorer.unmapped !== undefined ? { unmapped: scorer.unmapped } : {}),
      ...(margin === undefined ? {} : { margin }),
    };
  } finally {
    await scorer.close();
  }
}

/** A scored point as the step's margin needs it; undefined for a failed one. */
function stepScore(family: CurveFamily, o: Outcome, perExample: PerExample): StepScore | undefined {
  return 'metrics' in o
    ? { name: family.name, raw: family.method === 'raw', metrics: o.metrics, perExample }
    : undefined;
}
