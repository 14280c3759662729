/** Reading checkpoint tensors into memory, and the dtype correspondences with ONNX. */
import { AvgCkptError } from '../errors.js';
import { readElements } from '../io/formats/read-elements.js';
import { numelOf, type TensorSource } from '../io/formats/tensor-source.js';
import { ONNX_DTYPE } from '../io/onnx/model.js';
import { decode, isReadableFloat, type DType } from '../io/safetensors/dtype.js';
import type { FilePool } from '../io/storage/file-pool.js';

/** A tensor's elements in C order, little-endian, in a fresh 8-aligned buffer. */
export async function readBytes(pool: FilePool, src: TensorSource): Promise<Uint8Array> {
  const out = new Uint8Array(src.byteLength);
  await readElements(pool, src, 0, numelOf(src.shape), out);
  return out;
}

/** A float tensor's exact values. */
export async function readFloat64(pool: FilePool, src: TensorSource): Promise<Float64Array> {
  if (!isReadableFloat(src.dtype)) throw new AvgCkptError('unsupported-dtype', `${src.dtype} cannot be read as floats`, { file: src.file, tensor: src.name });
  return decode(src.dtype, await readBytes(pool, src));
}

const TO_ONNX: Partial<Record<DType, number>> = {
  F32: ONNX_DTYPE.FLOAT, F16: ONNX_DTYPE.FLOAT16, BF16: ONNX_DTYPE.BFLOAT16, F64: ONNX_DTYPE.DOUBLE,
  I64: ONNX_DTYPE.INT64, I32: ONNX_DTYPE.INT32, I16: ONNX_DTYPE.INT16, I8: ONNX_DTYPE.INT8,
  U8: ONNX_DTYPE.UINT8, U16: ONNX_DTYPE.UINT16, U32: ONNX_DTYPE.UINT32, U64: ONNX_DTYPE.UINT64, BOOL: ONNX_DTYPE.BOOL,
};

/** The ONNX element type with the same bytes as a safetensors dtype, if there is one. */
export function onnxTypeOf(d: DType): number | undefined {
  return TO_ONNX[d];
}
