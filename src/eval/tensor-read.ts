/** Reading checkpoint tensors into memory. */
import { AvgCkptError } from '../errors.js';
import { readElements } from '../io/formats/read-elements.js';
import { numelOf, type TensorSource } from '../io/formats/tensor-source.js';
import { isReadableFloat } from '../io/dtype.js';
import { decode } from '../io/float-codec.js';
import type { FilePool } from '../io/storage/file-pool.js';

/** A tensor's elements in C order, little-endian, in a fresh 8-aligned buffer. */
export async function readBytes(pool: FilePool, src: TensorSource): Promise<Uint8Array> {
  const out = new Uint8Array(src.byteLength);
  await readElements(pool, src, 0, numelOf(src.shape), out);
  return out;
}

/** A float tensor's exact values. */
export async function readFloat64(pool: FilePool, src: TensorSource): Promise<Float64Array> {
  if (!isReadableFloat(src.dtype))
    throw new AvgCkptError('unsupported-dtype', `${src.dtype} cannot be read as floats`, {
      file: src.file,
      tensor: src.name,
    });
  return decode(src.dtype, await readBytes(pool, src));
}
