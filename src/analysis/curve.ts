/**
 * The arithmetic of `curve`: the weight vectors of the raw model and the LAWA / EMA averages that
 * end at each checkpoint, the steps evaluated, and how many steps each average saves to reach a
 * target. Scoring and writing are the command's (src/commands/curve.ts).
 */
import type { ExportedInitializer } from '../eval/binding.js';
import type { Metrics } from '../eval/metrics.js';
import { AvgCkptError } from '../errors.js';
import { raw } from '../recipes/lawa.js';
import { FAMILIES } from '../recipes/registry.js';
import { weightVector, type Method, type WeightVector } from '../recipes/weight-vector.js';
import type { CurveMargin } from './curve-margin.js';
import { bestRawTarget, timeToTarget, type Direction, type Target, type TimeToTarget } from './time-to-target.js';

export interface CurvePoint {
  readonly step: number;
  /** Empty when the point failed to score. */
  readonly metrics: Metrics;
  /** Why it has no metrics (its evaluation command failed, --eval-cmd). */
  readonly failed?: string;
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
  /** The files the command wrote (--plot, --html), when any. */
  readonly written?: readonly string[];
  /** Float initializers no checkpoint supplies, scored as exported at every point (--allow-unmapped). */
  readonly unmapped?: readonly ExportedInitializer[];
  /** At each step, the best average's bootstrap margin over the raw checkpoint; absent without per-row values. */
  readonly margin?: CurveMargin;
}

/** One line of the curve: a method, and its vector ending at checkpoint i (undefined: not defined there). */
export interface CurveFamily {
  readonly name: string;
  readonly method: Method;
  readonly params: Readonly<Record<string, number | string>>;
  readonly at: (i: number) => WeightVector | undefined;
}

/** `v` over the first steps of the series, extended with zero weights to the whole series. */
function padded(v: WeightVector, steps: readonly number[]): WeightVector {
  return weightVector(`${v.name}@${v.steps[v.steps.length - 1]}`, v.method, { ...v.params }, steps, [
    ...v.weights,
    ...steps.slice(v.weights.length).map(() => 0),
  ]);
}

/** The indexes evaluated: every N-th counted back from the newest, so the end of the run is always in. */
export function curveIndexes(n: number, every = 1): number[] {
  if (!Number.isSafeInteger(every) || every < 1)
    throw new AvgCkptError('usage', `--every must be a whole number >= 1, got ${every}`);
  return Array.from({ length: n }, (_, i) => i).filter((i) => (n - 1 - i) % every === 0);
}

/** The averages `curve` follows, by the family's curve key (`windows`, `ema`): their parameter values. */
export type CurveAverages = Readonly<Record<string, readonly number[] | undefined>>;

/** The families `curve` can follow (the registry's families with a `curve` entry). */
export const CURVE_FAMILIES = FAMILIES.flatMap((f) => (f.curve === undefined ? [] : [{ family: f, curve: f.curve }]));

/** The raw model, then each asked-for average of each family, in registry order. */
export function families(steps: readonly number[], averages: CurveAverages): CurveFamily[] {
  const out: CurveFamily[] = [{ name: 'raw', method: 'raw', params: {}, at: (i) => raw(steps, steps[i]) }];
  for (const { family, curve } of CURVE_FAMILIES) {
    for (const v of [...new Set(averages[curve.key] ?? [])]) {
      const needs = curve.needs?.(v) ?? 1;
      if (needs > steps.length)
        throw new AvgCkptError('usage', `--${curve.flag} ${v} is longer than the ${steps.length} selected checkpoints`);
      const probe = family.vector(steps, v); // validates v
      out.push({
        name: probe.name,
        method: probe.method,
        params: probe.params,
        at: (i) => (i + 1 >= needs ? padded(family.vector(steps.slice(0, i + 1), v), steps) : undefined),
      });
    }
  }
  return out;
}

/** Time to target from the evaluated curves (the raw curve is `methods[0]`). */
export function curveTimeToTarget(
  methods: readonly CurveMethod[],
  metric: string,
  direction: Direction,
  given?: number,
): { target: Target; ttt: CurveTimeToTarget[] } {
  // a point that failed to score is NaN: never the target, never reaching it
  const values = (m: CurveMethod) => ({
    name: m.name,
    points: m.points.map((p) => ({ step: p.step, value: p.metrics[metric] ?? NaN })),
  });
  if (given === undefined && methods[0].points.every((p) => p.failed !== undefined)) {
    throw new AvgCkptError(
      'eval-command',
      'no raw checkpoint could be scored, so there is no target: pass --target VALUE',
    );
  }
  const target =
    given === undefined ? bestRawTarget(values(methods[0]), direction) : { value: given, source: 'given' as const };
  const rest = methods.slice(1);
  const ttt = timeToTarget(values(methods[0]), rest.map(values), target.value, direction);
  return { target, ttt: ttt.map((t, i) => ({ ...t, method: rest[i].method, params: rest[i].params })) };
}
