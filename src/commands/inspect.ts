/** `inspect`, the whole job: the series every other command would see, checked, and optionally its ONNX binding. */
import type { OpenOptions } from '../io/formats/format.js';
import type { InspectReport } from '../report/inspect-table.js';
import { checkCompatible } from '../series/compatible.js';
import { discoverSeries } from '../series/discover.js';
import { selectCheckpoints, type SelectionOptions } from '../series/select.js';
import { summarizeSeries } from '../series/summary.js';

export type { InspectReport };

export interface InspectOptions {
  readonly inputs: readonly string[];
  /** How checkpoint files are opened (`--key`). */
  readonly open?: OpenOptions;
  readonly selection?: SelectionOptions;
  /** Also bind this graph's initializers to the checkpoint tensors. */
  readonly onnx?: string;
  /** `REGEX=>REPLACEMENT` rules, as sweep-window takes them. */
  readonly maps?: readonly string[];
}

export async function inspect(opts: InspectOptions): Promise<InspectReport> {
  const series = await discoverSeries(opts.inputs, { open: opts.open });
  const selected = selectCheckpoints(series.checkpoints, opts.selection ?? {});
  checkCompatible(selected);
  const summary = summarizeSeries(series, selected);
  if (opts.onnx === undefined) return { ...summary, compatible: true };
  // loaded only when asked: the binding code pulls in the ONNX protobuf definitions
  const { describeBinding } = await import('../eval/binding.js');
  return {
    ...summary,
    compatible: true,
    onnx: opts.onnx,
    binding: await describeBinding(opts.onnx, selected, opts.maps),
  };
}
