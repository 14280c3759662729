/** All checkpoints of a selection must agree on tensor names, shapes and dtypes. */
import { AvgCkptError } from '../errors.js';
import type { Checkpoint, TensorSource } from './checkpoint.js';

function where(ck: Checkpoint, t: TensorSource | undefined): string {
  return t?.file ?? ck.index ?? ck.path;
}

/** Checks every checkpoint against the newest; names both files on a mismatch. */
export function checkCompatible(checkpoints: readonly Checkpoint[]): void {
  const ref = checkpoints[checkpoints.length - 1];
  for (const ck of checkpoints) {
    if (ck === ref) continue;
    for (const [name, r] of ref.tensors) {
      const t = ck.tensors.get(name);
      if (t === undefined) {
        throw new AvgCkptError('series-mismatch', `has no tensor that ${where(ref, r)} has`, {
          file: where(ck, undefined),
          tensor: name,
        });
      }
      if (t.dtype !== r.dtype) {
        throw new AvgCkptError('series-mismatch', `is ${t.dtype} here but ${r.dtype} in ${r.file}`, {
          file: t.file,
          tensor: name,
        });
      }
      if (t.shape.length !== r.shape.length || t.shape.some((d, i) => d !== r.shape[i])) {
        throw new AvgCkptError(
          'series-mismatch',
          `has shape [${t.shape.join(', ')}] here but [${r.shape.join(', ')}] in ${r.file}`,
          { file: t.file, tensor: name },
        );
      }
    }
    for (const [name, t] of ck.tensors) {
      if (!ref.tensors.has(name)) {
        throw new AvgCkptError('series-mismatch', `is not in the newest checkpoint ${where(ref, undefined)}`, {
          file: t.file,
          tensor: name,
        });
      }
    }
  }
}
