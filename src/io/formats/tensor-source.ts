/** Where one tensor's elements are, in whatever format holds them. */
import { bytesPerElement, type DType } from '../dtype.js';

export interface TensorSource {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly file: string;
  /** Absolute position in `file` of element 0's first byte. */
  readonly position: number;
  /** Bytes of the elements (element count x element size), however they are laid out. */
  readonly byteLength: number;
  /**
   * Element strides, only for a view that is not C-contiguous (e.g. a transposed weight inside
   * a PyTorch storage). Absent: C order, one run of `byteLength` bytes at `position`.
   */
  readonly strides?: readonly number[];
  /** True when elements are stored big-endian (PyTorch legacy files from big-endian machines). */
  readonly bigEndian?: boolean;
  /** Identifies a storage several sources share (tied weights), unique within a checkpoint. */
  readonly storage?: string;
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes per element of a source's dtype (whole-byte dtypes only; sub-byte dtypes are never read). */
export function elementBytes(src: Pick<TensorSource, 'dtype'>): number {
  return bytesPerElement(src.dtype);
}

/** True when the elements are one C-order run at `position` (no strides, or strides that say so). */
export function isContiguous(src: Pick<TensorSource, 'shape' | 'strides'>): boolean {
  if (src.strides === undefined) return true;
  let expected = 1;
  for (let d = src.shape.length - 1; d >= 0; d--) {
    if (src.shape[d] !== 1 && src.strides[d] !== expected) return false;
    expected *= src.shape[d];
  }
  return true;
}

/**
 * True when the bytes at `position` are the tensor as-is: C order, little-endian. Only such a
 * source can be handed to another program by file and offset (ONNX external data).
 */
export function isInPlace(src: TensorSource): boolean {
  return isContiguous(src) && src.bigEndian !== true;
}
