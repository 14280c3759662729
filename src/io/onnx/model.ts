/**
 * ONNX models: decode and encode a ModelProto, and read an initializer's bytes wherever they
 * are (raw_data, the typed repeated fields, or external data beside the model).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import onnxProto from 'onnx-proto';
import { AvgCkptError, ioError } from '../../errors.js';
import { openReader, readWhole, storageError } from '../storage/storage.js';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type NodeProto = onnxProto.onnx.INodeProto;

/** ONNX TensorProto.DataType codes and their element sizes. */
export const ONNX_DTYPE = {
  FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, BFLOAT16: 16,
} as const;

const ELEMENT_BYTES: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };
const NAMES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16' };

export function isFloatType(t: number): boolean {
  return t === ONNX_DTYPE.FLOAT || t === ONNX_DTYPE.FLOAT16 || t === ONNX_DTYPE.DOUBLE || t === ONNX_DTYPE.BFLOAT16;
}

export function dtypeName(t: number): string {
  return NAMES[t] ?? `type ${t}`;
}

export function elementBytes(t: number): number {
  const n = ELEMENT_BYTES[t];
  if (n === undefined) throw new AvgCkptError('invalid-onnx', `tensor element type ${dtypeName(t)} is not supported`);
  return n;
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
  return { path, dir: dirname(resolve(path)), proto };
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
  if (!location) throw new AvgCkptError('invalid-onnx', 'external data has no location', { file: model, tensor: t.name ?? '' });
  const offset = Number(kv.get('offset') ?? 0);
  const length = kv.has('length') ? Number(kv.get('length')) : numel(dimsOf(t)) * elementBytes(t.dataType ?? 0);
  return { file: isAbsolute(location) ? location : resolve(dir, location), offset, length };
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
  else if (type === ONNX_DTYPE.INT64) (t.int64Data ?? []).forEach((v, i) => dv.setBigInt64(8 * i, BigInt(v.toString()), true));
  else if (type === ONNX_DTYPE.UINT32 || type === ONNX_DTYPE.UINT64) {
    (t.uint64Data ?? []).forEach((v, i) => (size === 8 ? dv.setBigUint64(8 * i, BigInt(v.toString()), true) : dv.setUint32(4 * i, Number(v), true)));
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
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes); // a copy (Buffer.slice would be a view)
  const n = aligned.byteLength / elementBytes(type);
  if (type === ONNX_DTYPE.FLOAT) return new Float32Array(aligned.buffer, aligned.byteOffset, n);
  if (type === ONNX_DTYPE.DOUBLE) return Float32Array.from(new Float64Array(aligned.buffer, aligned.byteOffset, n));
  const bits = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  const out = new Float32Array(n);
  const u = new Uint32Array(out.buffer);
  if (type === ONNX_DTYPE.BFLOAT16) {
    for (let i = 0; i < n; i++) u[i] = bits[i] << 16;
    return out;
  }
  for (let i = 0; i < n; i++) {
    const h = bits[i];
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m === 0 ? Infinity : NaN) : (1 + m / 1024) * 2 ** (e - 15);
    out[i] = h & 0x8000 ? -v : v;
  }
  return out;
}
