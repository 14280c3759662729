/** What `inspect` prints: the series as a table, and the ONNX binding when asked for. */
import type { BindingRow } from '../eval/binding.js';
import type { CheckpointSummary } from '../series/summary.js';
import { formatBytes } from './format-bytes.js';

/** What `inspect` found (its JSON output). */
export interface InspectReport {
  readonly checkpoints: CheckpointSummary[];
  readonly stepsKnown: boolean;
  readonly totalBytes: number;
  /** What discovery left out or assumed (printed on stderr). */
  readonly notes: readonly string[];
  /** Always true: incompatible checkpoints throw. */
  readonly compatible: true;
  readonly onnx?: string;
  readonly binding?: BindingRow[];
}

export function formatInspect(r: InspectReport): string {
  const lines = [
    `${r.checkpoints.length} checkpoints${r.stepsKnown ? '' : ' (no step numbers found: order as given)'}, ${formatBytes(r.totalBytes)} in all; keys, shapes and dtypes agree`,
  ];
  // a PyTorch file says which state dict was read: `pytorch[state_dict]`, `pytorch[]` for a plain one
  const format = (c: CheckpointSummary) => (c.entry === undefined ? c.format : `${c.format}[${c.entry}]`);
  const fw = Math.max(6, ...r.checkpoints.map((c) => format(c).length));
  lines.push(
    `${'step'.padStart(8)}  ${'shards'.padStart(6)}  ${'bytes'.padStart(9)}  ${'tensors'.padStart(7)}  ${'format'.padEnd(fw)}  dtypes  path`,
  );
  for (const c of r.checkpoints) {
    const dt = Object.entries(c.dtypes)
      .map(([d, n]) => `${d}x${n}`)
      .join(',');
    lines.push(
      `${String(c.step).padStart(8)}  ${String(c.shards).padStart(6)}  ${formatBytes(c.bytes).padStart(9)}  ${String(c.tensors).padStart(7)}  ${format(c).padEnd(fw)}  ${dt}  ${c.path}`,
    );
  }
  if (r.binding !== undefined) {
    const binding = r.binding;
    const unmapped = binding.filter((b) => b.status === 'unmapped').length;
    lines.push(
      '',
      `${r.onnx}: ${binding.length} initializers, ${unmapped === 0 ? 'every float initializer is bound' : `${unmapped} unmapped (sweep-window would refuse the graph)`}`,
    );
    const w = Math.max(11, ...binding.map((b) => b.initializer.length));
    lines.push(
      `${'initializer'.padEnd(w)}  ${'status'.padEnd(8)}  ${'via'.padEnd(5)}  ${'dtype'.padEnd(7)}  ${'shape'.padEnd(14)}  source`,
    );
    for (const b of binding)
      lines.push(
        `${b.initializer.padEnd(w)}  ${b.status.padEnd(8)}  ${b.via.padEnd(5)}  ${b.dtype.padEnd(7)}  ${b.shape.padEnd(14)}  ${b.source}`,
      );
  }
  return lines.join('\n');
}
