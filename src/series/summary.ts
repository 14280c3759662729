/** A printable description of a series: what `inspect` shows. */
import { STATE_DICT_KEY } from '../io/pytorch/format.js';
import type { Checkpoint } from './checkpoint.js';
import type { Series } from './discover.js';

export interface CheckpointSummary {
  step: number;
  stepSource: string;
  path: string;
  format: string;
  /** The entry of the file the tensors came from (PyTorch: the state dict's key, '' for a plain one). */
  entry?: string;
  shards: number;
  bytes: number;
  tensors: number;
  /** dtype -> tensor count */
  dtypes: Record<string, number>;
}

export function summarizeCheckpoint(ck: Checkpoint): CheckpointSummary {
  const dtypes: Record<string, number> = {};
  for (const t of ck.tensors.values()) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
  const entry = ck.metadata[STATE_DICT_KEY];
  return {
    step: ck.step,
    stepSource: ck.stepSource,
    path: ck.path,
    format: ck.format,
    ...(entry === undefined ? {} : { entry }),
    shards: ck.files.length,
    bytes: ck.bytes,
    tensors: ck.tensors.size,
    dtypes,
  };
}

export interface SeriesSummary {
  checkpoints: CheckpointSummary[];
  stepsKnown: boolean;
  totalBytes: number;
  /** What discovery left out or assumed. */
  notes: readonly string[];
}

export function summarizeSeries(series: Series, selected: readonly Checkpoint[]): SeriesSummary {
  const checkpoints = selected.map(summarizeCheckpoint);
  return {
    checkpoints,
    stepsKnown: series.stepsKnown,
    totalBytes: checkpoints.reduce((a, c) => a + c.bytes, 0),
    notes: series.notes,
  };
}
