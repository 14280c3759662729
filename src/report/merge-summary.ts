/** What `merge` prints: the weights of a dry run, and one line for a written average. */
import type { WeightVector } from '../recipes/weight-vector.js';
import { formatBytes } from './format-bytes.js';

export interface WeightRow {
  readonly step: number;
  readonly weight: number;
  readonly path: string;
}

/** `--dry-run`: how many of the selected checkpoints carry weight, then one line for each that does. */
export function formatDryRun(vector: WeightVector, rows: readonly WeightRow[], selected: number): string {
  const lines = [`${vector.name}: ${rows.length} of ${selected} selected checkpoints carry weight`];
  for (const r of rows) lines.push(`  step ${String(r.step).padStart(8)}  weight ${r.weight.toFixed(6)}  ${r.path}`);
  return lines.join('\n');
}

/** The line after a merge: method, the steps used, the output, its size and files, the time. */
export function formatMergeDone(r: {
  vector: WeightVector;
  contributing: readonly { step: number }[];
  output: string;
  bytesWritten: number;
  files: number;
  seconds: number;
}): string {
  const used = r.contributing;
  return `${r.vector.name} over ${used.length} checkpoints (steps ${used[0].step}..${used[used.length - 1].step}) -> ${r.output} (${formatBytes(r.bytesWritten)}, ${r.files} file${r.files > 1 ? 's' : ''}, ${r.seconds.toFixed(1)} s)`;
}
