/**
 * Where a torch tensor's elements are in the file: its storage's bytes, an element offset into
 * them and strides. Checks that every element the view reaches lies inside its storage, so a
 * hostile file cannot make a reader wander into other records.
 */
import { AvgCkptError } from '../../errors.js';
import { dtypeBits, type DType } from '../dtype.js';
import { isContiguous, type TensorSource } from '../formats/tensor-source.js';
import type { NamedTensor } from './state-dict.js';

/** Where a storage's bytes are. */
export interface StoragePlace {
  readonly position: number;
  readonly byteLength: number;
}

export function elementSize(dtype: DType, file: string, tensor: string): number {
  const bits = dtypeBits(dtype);
  if (bits % 8 !== 0) throw new AvgCkptError('unsupported-dtype', `dtype ${dtype} is not byte-sized`, { file, tensor });
  return bits / 8;
}

/** Locates `t` in its storage at `place`, checking that the view stays inside the storage. */
export function placeTensor(t: NamedTensor, place: StoragePlace, file: string, bigEndian: boolean): TensorSource {
  const { tensor } = t;
  const size = elementSize(tensor.dtype, file, t.name);
  const numel = tensor.shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(numel * size))
    throw new AvgCkptError('invalid-pickle', `shape [${tensor.shape.join(', ')}] is too large`, {
      file,
      tensor: t.name,
    });
  if (numel > 0) {
    let last = tensor.offset;
    for (let i = 0; i < tensor.shape.length; i++) last += (tensor.shape[i] - 1) * tensor.strides[i];
    const storageElements = Math.floor(place.byteLength / size);
    if (!Number.isSafeInteger(last) || last >= storageElements) {
      throw new AvgCkptError(
        'invalid-pickle',
        `view (offset ${tensor.offset}, shape [${tensor.shape.join(', ')}], strides [${tensor.strides.join(', ')}]) reaches element ${last} of a storage of ${storageElements}`,
        { file, tensor: t.name },
      );
    }
  }
  const contiguous = isContiguous({ shape: tensor.shape, strides: tensor.strides });
  return {
    name: t.name,
    dtype: tensor.dtype,
    shape: tensor.shape,
    file,
    position: place.position + tensor.offset * size,
    byteLength: numel * size,
    ...(contiguous ? {} : { strides: tensor.strides }),
    storage: tensor.storage.view?.root ?? tensor.storage.key,
    ...(bigEndian ? { bigEndian } : {}),
  };
}
