/**
 * Where a torch tensor's elements are in the file: its storage's bytes, an element offset into
 * them and strides. Checks that every element the view reaches lies inside its storage, so a
 * hostile file cannot make a reader wander into other records.
 */
import { AvgCkptError } from '../../errors.js';
import { dtypeBits, type DType } from '../safetensors/dtype.js';
import type { NamedTensor } from './state-dict.js';

/** A tensor of a torch file, located (the format seam's TensorSource is built from this). */
export interface TorchTensorSource {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly file: string;
  /** Absolute position of element 0 (the storage's data plus the view's offset). */
  readonly position: number;
  /** numel x element size: the bytes the tensor's elements occupy when read in C order. */
  readonly byteLength: number;
  /** Element strides, only when the tensor is not C-contiguous. */
  readonly strides?: readonly number[];
  /** The storage key: tensors with the same storage share bytes (views, tied weights). */
  readonly storage: string;
  /** Storage data is big-endian (a `byteorder` record saying `big`). */
  readonly bigEndian: boolean;
}

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

function isCContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** Locates `t` in its storage at `place`, checking that the view stays inside the storage. */
export function placeTensor(t: NamedTensor, place: StoragePlace, file: string, bigEndian: boolean): TorchTensorSource {
  const { tensor } = t;
  const size = elementSize(tensor.dtype, file, t.name);
  const numel = tensor.shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(numel * size)) throw new AvgCkptError('invalid-pickle', `shape [${tensor.shape.join(', ')}] is too large`, { file, tensor: t.name });
  if (numel > 0) {
    let last = tensor.offset;
    for (let i = 0; i < tensor.shape.length; i++) last += (tensor.shape[i] - 1) * tensor.strides[i];
    const storageElements = Math.floor(place.byteLength / size);
    if (!Number.isSafeInteger(last) || last >= storageElements) {
      throw new AvgCkptError('invalid-pickle', `view (offset ${tensor.offset}, shape [${tensor.shape.join(', ')}], strides [${tensor.strides.join(', ')}]) reaches element ${last} of a storage of ${storageElements}`, { file, tensor: t.name });
    }
  }
  const contiguous = isCContiguous(tensor.shape, tensor.strides);
  return {
    name: t.name,
    dtype: tensor.dtype,
    shape: tensor.shape,
    file,
    position: place.position + tensor.offset * size,
    byteLength: numel * size,
    ...(contiguous ? {} : { strides: tensor.strides }),
    storage: tensor.storage.view?.root ?? tensor.storage.key,
    bigEndian,
  };
}
