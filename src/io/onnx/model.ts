/**
 * ONNX models: decode and encode a ModelProto, and read an initializer's bytes wherever they
 * are (raw_data, the typed repeated fields, or external data beside the model).
 */
import onnxProto from 'onnx-proto';
import { AvgCkptError, ioError } from '../../errors.js';
import {
  bytesPerElement,
  dtypeBits,
  dtypeOfOnnx,
  isReadableFloat,
  isWritableFloat,
  ONNX_DTYPE,
  onnxTypeName,
} from '../dtype.js';
import { decode } from '../float-codec.js';
import { folderOf, resolveIn } from '../storage/paths.js';
import { openReader, readWhole, storageError } from '../storage/storage.js';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type NodeProto = onnxProto.onnx.INodeProto;

/** True for the float element types avg-ckpt averages into a graph (float32/16/64, bfloat16). */
export function isFloatType(t: number): boolean {
  const d = dtypeOfOnnx(t);
  return d !== undefined && isWritableFloat(d);
}

export function dtypeName(t: number): string {
  return onnxTypeName(t);
}

/** Bytes per element of an ONNX element type whose elements are whole bytes. */
export function elementBytes(t: number): number {
  const d = dtypeOfOnnx(t);
  if (d === undefined || dtypeBits(d) % 8 !== 0)
    throw new AvgCkptError('invalid-onnx', `tensor element type ${dtypeName(t)} is not supported`);
  return bytesPerElement(d);
}

export function dimsOf(t: TensorProto): number[] {
  return (t.dims ?? []).map(Number);
}

export function numel(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

export interface LoadedModel {
  readonly path: string;
  /** The folder external data locations are relative to. */
  readonly dir: string;
  readonly proto: ModelProto;
}

export async function loadModel(path: string): Promise<LoadedModel> {
  let bytes: Uint8Array;
  try {
    bytes = await readWhole(path);
  } catch (e) {
    throw ioError(path, e, 'read the ONNX model');
  }
  let proto: ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new AvgCkptError('invalid-onnx', `not an ONNX model (${(e as Error).message})`, { file: path });
  }
  if (!proto.graph) throw new AvgCkptError('invalid-onnx', 'model has no graph', { file: path });
  return { path, dir: folderOf(path), proto };
}

/** A deep copy of a model to rewrite, leaving the loaded one as it was. */
export function copyModel(model: LoadedModel): ModelProto {
  return onnx.ModelProto.decode(encodeModel(model.proto));
}

export function encodeModel(proto: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(proto).finish();
}

/** Where an externally stored tensor's bytes are. */
export interface ExternalRef {
  /** Absolute path of the data file. */
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

export function externalRef(t: TensorProto, dir: string, model: string): ExternalRef | undefined {
  if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return undefined;
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location)
    throw new AvgCkptError('invalid-onnx', 'external data has no location', { file: model, tensor: t.name ?? '' });
  const offset = Number(kv.get('offset') ?? 0);
  const length = kv.has('length') ? Number(kv.get('length')) : numel(dimsOf(t)) * elementBytes(t.dataType ?? 0);
  return { file: resolveIn(dir, location), offset, length };
}

/** Makes `t` point at `length` bytes at `offset` of `location` (relative to the session's folder). */
export function setExternal(t: TensorProto, location: string, offset: number, length: number): void {
  t.rawData = new Uint8Array(0);
  t.floatData = [];
  t.int32Data = [];
  t.int64Data = [];
  t.doubleData = [];
  t.uint64Data = [];
  t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
  t.externalData = [
    { key: 'location', value: location },
    { key: 'offset', value: String(offset) },
    { key: 'length', value: String(length) },
  ];
}

/** An initializer's data as little-endian bytes, in its own element type. */
export async function tensorBytes(t: TensorProto, model: LoadedModel): Promise<Uint8Array> {
  const type = t.dataType ?? 0;
  const n = numel(dimsOf(t));
  const size = elementBytes(type);
  const ext = externalRef(t, model.dir, model.path);
  if (ext !== undefined) {
    const out = new Uint8Array(ext.length);
    try {
      const reader = await openReader(ext.file);
      try {
        await reader.read(ext.offset, out);
      } finally {
        await reader.close();
      }
    } catch (e) {
      throw storageError(ext.file, e, `read external data of initializer "${t.name}"`);
    }
    return out;
  }
  if (t.rawData && t.rawData.byteLength > 0) return t.rawData;
  const out = new Uint8Array(n * size);
  const dv = new DataView(out.buffer);
  if (type === ONNX_DTYPE.FLOAT) (t.floatData ?? []).forEach((v, i) => dv.setFloat32(4 * i, v, true));
  else if (type === ONNX_DTYPE.DOUBLE) (t.doubleData ?? []).forEach((v, i) => dv.setFloat64(8 * i, v, true));
  else if (type === ONNX_DTYPE.INT64)
    (t.int64Data ?? []).forEach((v, i) => dv.setBigInt64(8 * i, BigInt(v.toString()), true));
  else if (type === ONNX_DTYPE.UINT32 || type === ONNX_DTYPE.UINT64) {
    (t.uint64Data ?? []).forEach((v, i) =>
      size === 8 ? dv.setBigUint64(8 * i, BigInt(v.toString()), true) : dv.setUint32(4 * i, Number(v), true),
    );
  } else {
    // int32_data carries every narrower type, float16 and bfloat16 as bit patterns
    (t.int32Data ?? []).forEach((v, i) => {
      if (size === 4) dv.setInt32(4 * i, v, true);
      else if (size === 2) dv.setUint16(2 * i, v & 0xffff, true);
      else dv.setUint8(i, v & 0xff);
    });
  }
  return out;
}

/** float32 values of a float initializer (float16/bfloat16/float64 converted exactly or rounded once). */
export function floatValues(type: number, bytes: Uint8Array): Float32Array {
  const d = dtypeOfOnnx(type);
  if (d === undefined || !isReadableFloat(d))
    throw new AvgCkptError('invalid-onnx', `${dtypeName(type)} values are not floats`);
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes); // a copy (Buffer.slice would be a view)
  if (d === 'F32') return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  return Float32Array.from(decode(d, aligned)); // exact for 16- and 8-bit floats, one rounding from float64
}
