/** The library's `merge`: discover a run, select, build the weight vector, write the average. */
import { checkpointInputs } from '../io/output-guard.js';
import { vectorFromSpec, type MethodSpec } from '../recipes/from-spec.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import { discoverSeries, type Series } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';
import type { Checkpoint } from '../series/checkpoint.js';
import { mergeToOutput, type MergeOptions, type MergeResult } from './merge.js';

export interface MergeRunOptions extends MergeOptions {
  select?: SelectionOptions;
  method: MethodSpec;
}

export interface ResolvedMerge {
  series: Series;
  selected: Checkpoint[];
  vector: WeightVector;
}

/** Everything but the tensor data: what `--dry-run` shows. */
export async function resolveMerge(inputs: string[] | Series, select: SelectionOptions = {}, method: MethodSpec): Promise<ResolvedMerge> {
  const series = Array.isArray(inputs) ? await discoverSeries(inputs) : (inputs as Series);
  const selected = selectCheckpoints(series.checkpoints, select);
  const vector = vectorFromSpec({ ...method, last: method.last ?? select.last }, selected.map((c) => c.step), series.stepsKnown);
  return { series, selected, vector };
}

export async function merge(inputs: string[] | Series, options: MergeRunOptions): Promise<MergeResult> {
  const { series, selected, vector } = await resolveMerge(inputs, options.select, options.method);
  // every checkpoint of the run, not only the selected ones, is safe from the output
  return mergeToOutput(selected, vector, { ...options, inputs: [...checkpointInputs(series.checkpoints), ...(options.inputs ?? [])] });
}
