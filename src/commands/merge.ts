/** `merge`, the whole job: discover a run, select, build the weight vector, write the average. */
import { mergeToOutput, type MergeResult } from '../engine/merge.js';
import { mergeInParts, type PartOptions } from '../engine/parts.js';
import { checkpointInputs } from '../io/output-guard.js';
import { vectorFromSpec, type MethodSpec } from '../recipes/from-spec.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { OpenOptions } from '../io/formats/format.js';
import { discoverSeries, type Series } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';

export interface MergeRunOptions extends PartOptions {
  select?: SelectionOptions;
  /** How checkpoint files are opened (`--key`). */
  open?: OpenOptions;
  method: MethodSpec;
  /** Gets what discovery left out or assumed, before the merge starts. */
  onNote?: (line: string) => void;
}

/** A selected checkpoint and its weight in the average. */
export interface WeightedCheckpoint {
  step: number;
  weight: number;
  path: string;
}

export interface ResolvedMerge {
  series: Series;
  selected: Checkpoint[];
  vector: WeightVector;
  /** The selected checkpoints that carry weight, with their weights, oldest first. */
  checkpoints: WeightedCheckpoint[];
}

export interface MergeRunResult extends MergeResult, ResolvedMerge {
  /** Wall-clock seconds reading and writing took. */
  seconds: number;
}

/** Everything but the tensor data: what `--dry-run` shows. */
export async function resolveMerge(
  inputs: string[] | Series,
  select: SelectionOptions = {},
  method: MethodSpec,
  open: OpenOptions = {},
): Promise<ResolvedMerge> {
  const series = Array.isArray(inputs) ? await discoverSeries(inputs, { open }) : inputs;
  const selected = selectCheckpoints(series.checkpoints, select);
  const vector = vectorFromSpec(
    { ...method, last: method.last ?? select.last },
    selected.map((c) => c.step),
    series.stepsKnown,
  );
  const checkpoints = selected
    .map((c, i) => ({ step: c.step, weight: vector.weights[i], path: c.path }))
    .filter((c) => c.weight > 0);
  return { series, selected, vector, checkpoints };
}

export async function merge(inputs: string[] | Series, options: MergeRunOptions): Promise<MergeRunResult> {
  const resolved = await resolveMerge(inputs, options.select, options.method, options.open);
  resolved.series.notes.forEach((line) => options.onNote?.(line));
  const started = performance.now();
  // every checkpoint of the run, not only the selected ones, is safe from the output
  const guarded = [...checkpointInputs(resolved.series.checkpoints), ...(options.inputs ?? [])];
  const write = options.part !== undefined || options.finalize === true ? mergeInParts : mergeToOutput;
  const result = await write(resolved.selected, resolved.vector, { ...options, inputs: guarded });
  return { ...resolved, ...result, seconds: (performance.now() - started) / 1000 };
}
