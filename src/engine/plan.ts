/**
 * What a merge will write: for each output tensor its dtype, where its inputs are, and which
 * output file it goes to. Everything here is decided from headers alone, before any tensor
 * data is read, so every error about shapes, dtypes and layout comes before work starts.
 */
import { basename } from 'node:path';
import { AvgCkptError } from '../errors.js';
import { type DType, isIntegerKind, isReadableFloat, isWritableFloat, type WritableFloat } from '../io/dtype.js';
import { byteLengthOf, type OutputTensor } from '../io/safetensors/writer.js';
import { SAFETENSORS_SINGLE_FILE } from '../io/safetensors/format.js';
import type { Checkpoint, TensorSource } from '../series/checkpoint.js';
import { checkCompatible } from '../series/compatible.js';
import type { WeightVector } from '../recipes/weight-vector.js';

export interface Contribution {
  readonly weight: number;
  readonly source: TensorSource;
}

export interface PlannedTensor extends OutputTensor {
  /** 'average': float64 accumulation over contributions; 'copy': bytes of the newest checkpoint. */
  readonly mode: 'average' | 'copy';
  readonly contributions: readonly Contribution[];
}

export interface OutputFilePlan {
  /** File name inside the output folder (or the output file itself). */
  readonly name: string;
  readonly tensors: PlannedTensor[];
}

export interface MergePlan {
  readonly vector: WeightVector;
  /** Checkpoints with a non-zero weight, oldest first. */
  readonly contributing: readonly Checkpoint[];
  /** The newest contributing checkpoint: integer tensors and config files come from it. */
  readonly newest: Checkpoint;
  readonly files: readonly OutputFilePlan[];
  /** Whether a folder output gets shards + index. */
  readonly sharded: boolean;
  /** Bytes that will be read from the inputs. */
  readonly bytesToRead: number;
  readonly bytesToWrite: number;
}

export interface PlanOptions {
  /** Output dtype for float tensors; default: each tensor's input dtype. */
  dtype?: WritableFloat;
  /** Folder output: split into shards of at most this many bytes. */
  shardSize?: number;
  /** 'file': one .safetensors; 'dir': a folder like the input. */
  outputKind: 'file' | 'dir';
}

export function planMerge(checkpoints: readonly Checkpoint[], vector: WeightVector, opts: PlanOptions): MergePlan {
  if (vector.steps.length !== checkpoints.length || vector.steps.some((s, i) => s !== checkpoints[i].step)) {
    throw new AvgCkptError('internal', `weight vector ${vector.name} does not match the selected checkpoints`);
  }
  const contributing = checkpoints.filter((_, i) => vector.weights[i] > 0);
  const weights = vector.weights.filter((w) => w > 0);
  if (contributing.length === 0)
    throw new AvgCkptError('empty-selection', `${vector.name} gives weight to no checkpoint`);
  checkCompatible(contributing);
  const newest = contributing[contributing.length - 1];

  const tensors: PlannedTensor[] = [];
  let bytesToRead = 0;
  for (const [name, src] of newest.tensors) {
    if (isIntegerKind(src.dtype)) {
      tensors.push({
        name,
        dtype: src.dtype,
        shape: src.shape,
        mode: 'copy',
        contributions: [{ weight: 1, source: src }],
      });
      bytesToRead += src.byteLength;
      continue;
    }
    if (!isReadableFloat(src.dtype)) {
      throw new AvgCkptError(
        'unsupported-dtype',
        `is ${src.dtype}, which avg-ckpt cannot average (F64, F32, F16, BF16, F8_E4M3, F8_E5M2 are supported)`,
        { file: src.file, tensor: name },
      );
    }
    const dtype: DType = opts.dtype ?? src.dtype;
    if (!isWritableFloat(dtype)) {
      throw new AvgCkptError(
        'unsupported-dtype',
        `is ${src.dtype}; avg-ckpt reads it but writes only F64/F32/F16/BF16: pass --dtype bf16 (or f16, f32)`,
        { file: src.file, tensor: name },
      );
    }
    const contributions = contributing.map((ck, i) => ({
      weight: weights[i],
      source: ck.tensors.get(name) as TensorSource,
    }));
    tensors.push({ name, dtype, shape: src.shape, mode: 'average', contributions });
    bytesToRead += src.byteLength * contributing.length;
  }

  const sharded = opts.outputKind === 'dir' && (opts.shardSize !== undefined || newest.index !== undefined);
  const files =
    opts.outputKind === 'file' || !sharded
      ? [{ name: SAFETENSORS_SINGLE_FILE, tensors }]
      : shard(tensors, newest, opts.shardSize);
  const bytesToWrite = tensors.reduce((a, t) => a + byteLengthOf(t), 0);
  return { vector, contributing, newest, files, sharded, bytesToRead, bytesToWrite };
}

/** Keeps the input's shard assignment, or splits greedily in name order at `shardSize`. */
function shard(tensors: PlannedTensor[], newest: Checkpoint, shardSize: number | undefined): OutputFilePlan[] {
  if (shardSize === undefined) {
    const byFile = new Map<string, PlannedTensor[]>();
    for (const f of newest.files) byFile.set(basename(f), []);
    for (const t of tensors) byFile.get(basename(newest.tensors.get(t.name)!.file))!.push(t);
    return [...byFile].filter(([, ts]) => ts.length > 0).map(([name, ts]) => ({ name, tensors: ts }));
  }
  const groups: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let size = 0;
  for (const t of [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const b = byteLengthOf(t);
    if (current.length > 0 && size + b > shardSize) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += b;
  }
  if (current.length > 0) groups.push(current);
  const n = String(groups.length).padStart(5, '0');
  return groups.map((ts, i) => ({ name: `model-${String(i + 1).padStart(5, '0')}-of-${n}.safetensors`, tensors: ts }));
}
