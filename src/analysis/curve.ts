/**
 * `curve` as a library call: along the run, score the raw model and the LAWA / EMA averages that
 * end at each checkpoint, with one evaluator (the mixture engine makes each point one run), and
 * measure how many steps each average saves to reach a target.
 */
import { evaluationInputs } from '../eval/inputs.js';
import { checkpointInputs, guardOutputs, type GuardedOutput } from '../io/output-guard.js';
import { Evaluator, type EvaluatorOptions } from '../eval/evaluator.js';
import type { Metrics } from '../eval/metrics.js';
import { AvgCkptError } from '../errors.js';
import { ema } from '../recipes/ema.js';
import { lawa, raw } from '../recipes/lawa.js';
import { weightVector, type Method, type WeightVector } from '../recipes/weight-vector.js';
import { checkCompatible } from '../series/compatible.js';
import { discoverSeries } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';
import { bestRawTarget, timeToTarget, type Direction, type Target, type TimeToTarget } from '../report/time-to-target.js';

export interface CurveOptions extends Omit<EvaluatorOptions, 'checkpoints' | 'steps' | 'series'> {
  readonly inputs: readonly string[];
  /** The part of the run to look at (--from-step, --to-step). */
  readonly selection?: Pick<SelectionOptions, 'fromStep' | 'toStep'>;
  /** LAWA windows k: the k checkpoints ending at each point. */
  readonly windows?: readonly number[];
  /** EMA decays per saved checkpoint, from the first selected checkpoint up to each point. */
  readonly ema?: readonly number[];
  /** Evaluate at every N-th checkpoint, counted back from the newest (default 1: all). */
  readonly every?: number;
  /** The metric value to reach (default: the best value of the raw model). */
  readonly target?: number;
  /** Files the caller writes after the curve (report, chart, page): checked against every input first. */
  readonly reportFiles?: readonly GuardedOutput[];
  readonly onNote?: (line: string) => void;
  readonly onProgress?: (done: number, total: number, what: string) => void;
}

export interface CurvePoint {
  readonly step: number;
  readonly metrics: Metrics;
}

export interface CurveMethod {
  readonly name: string;
  readonly method: Method;
  readonly params: Readonly<Record<string, number | string>>;
  readonly points: readonly CurvePoint[];
}

export interface CurveTimeToTarget extends TimeToTarget {
  readonly method: Method;
  readonly params: Readonly<Record<string, number | string>>;
}

export interface CurveReport {
  readonly metric: string;
  readonly direction: Direction;
  readonly device: string;
  readonly engine: string;
  readonly engine_reason: string;
  /** The steps evaluated. */
  readonly steps: readonly number[];
  /** The raw model first, then LAWA windows, then EMA decays. */
  readonly methods: readonly CurveMethod[];
  readonly target: Target;
  readonly time_to_target: readonly CurveTimeToTarget[];
}

/** One line of the curve: a method, and its vector ending at checkpoint i (undefined: not defined there). */
interface Family {
  readonly name: string;
  readonly method: Method;
  readonly params: Record<string, number>;
  readonly at: (i: number) => WeightVector | undefined;
}

/** `v` over the first steps of the series, extended with zero weights to the whole series. */
function padded(v: WeightVector, steps: readonly number[]): WeightVector {
  return weightVector(`${v.name}@${v.steps[v.steps.length - 1]}`, v.method, { ...v.params }, steps, [...v.weights, ...steps.slice(v.weights.length).map(() => 0)]);
}

/** The indexes evaluated: every N-th counted back from the newest, so the end of the run is always in. */
export function curveIndexes(n: number, every = 1): number[] {
  if (!Number.isSafeInteger(every) || every < 1) throw new AvgCkptError('usage', `--every must be a whole number >= 1, got ${every}`);
  return Array.from({ length: n }, (_, i) => i).filter((i) => (n - 1 - i) % every === 0);
}

function families(steps: readonly number[], windows: readonly number[], decays: readonly number[]): Family[] {
  const out: Family[] = [{ name: 'raw', method: 'raw', params: {}, at: (i) => raw(steps, steps[i]) }];
  for (const k of [...new Set(windows)]) {
    if (k > steps.length) throw new AvgCkptError('usage', `--window ${k} is longer than the ${steps.length} selected checkpoints`);
    const probe = lawa(steps, k); // validates k
    out.push({ name: probe.name, method: 'lawa', params: { k }, at: (i) => (i + 1 >= k ? padded(lawa(steps.slice(0, i + 1), k), steps) : undefined) });
  }
  for (const g of [...new Set(decays)]) {
    const probe = ema(steps, g); // validates g
    out.push({ name: probe.name, method: 'ema', params: { decay: g }, at: (i) => padded(ema(steps.slice(0, i + 1), g), steps) });
  }
  return out;
}

/** Time to target from the evaluated curves (the raw curve is `methods[0]`). */
export function curveTimeToTarget(methods: readonly CurveMethod[], metric: string, direction: Direction, given?: number): { target: Target; ttt: CurveTimeToTarget[] } {
  const values = (m: CurveMethod) => ({ name: m.name, points: m.points.map((p) => ({ step: p.step, value: p.metrics[metric] })) });
  const target = given === undefined ? bestRawTarget(values(methods[0]), direction) : { value: given, source: 'given' as const };
  const rest = methods.slice(1);
  const ttt = timeToTarget(values(methods[0]), rest.map(values), target.value, direction);
  return { target, ttt: ttt.map((t, i) => ({ ...t, method: rest[i].method, params: rest[i].params })) };
}

export async function curve(opts: CurveOptions): Promise<CurveReport> {
  const note = opts.onNote ?? (() => undefined);
  const windows = opts.windows ?? [];
  const decays = opts.ema ?? [];
  if (windows.length === 0 && decays.length === 0) throw new AvgCkptError('usage', 'curve needs an average to compare with the raw model: --window K and/or --ema G');
  if (opts.target !== undefined && !Number.isFinite(opts.target)) throw new AvgCkptError('usage', `--target must be a number, got ${opts.target}`);
  const series = await discoverSeries(opts.inputs);
  const selected = selectCheckpoints(series.checkpoints, opts.selection ?? {});
  checkCompatible(selected);
  const steps = selected.map((c) => c.step);
  const fams = families(steps, windows, decays);
  const indexes = curveIndexes(steps.length, opts.every);
  const jobs = indexes.flatMap((i) => fams.map((f, fi) => ({ fi, step: steps[i], vector: f.at(i) }))).filter((j) => j.vector !== undefined);

  const evaluator = await Evaluator.create({ ...opts, checkpoints: selected, series: series.checkpoints });
  try {
    await guardOutputs(opts.reportFiles ?? [], [...checkpointInputs(series.checkpoints), ...await evaluationInputs(evaluator.model, opts.data)]);
    evaluator.deviceNotes.forEach(note);
    note(`device ${evaluator.device}; engine ${evaluator.engineReason}`);
    evaluator.data.notes.forEach(note);
    for (const u of evaluator.binding.unmapped) note(`scoring "${u.initializer}" as exported (--allow-unmapped): ${u.why}`);
    const points: CurvePoint[][] = fams.map(() => []);
    for (const [n, j] of jobs.entries()) {
      opts.onProgress?.(n, jobs.length, `step ${j.step}`);
      points[j.fi].push({ step: j.step, metrics: await evaluator.score(j.vector!) });
    }
    opts.onProgress?.(jobs.length, jobs.length, '');
    const methods = fams.map((f, fi) => ({ name: f.name, method: f.method, params: f.params, points: points[fi] }));
    const { target, ttt } = curveTimeToTarget(methods, evaluator.rankMetric, evaluator.direction, opts.target);
    return {
      metric: evaluator.rankMetric, direction: evaluator.direction, device: evaluator.device, engine: evaluator.engineKind, engine_reason: evaluator.engineReason,
      steps: indexes.map((i) => steps[i]), methods, target, time_to_target: ttt,
    };
  } finally {
    await evaluator.close();
  }
}
