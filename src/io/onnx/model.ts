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
import { childInside, folderOf } from '../storage/paths.js';
import { openReader, readWhole, statPath, storageError, type PathInfo } from '../storage/storage.js';

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
  const model = { path, dir: folderOf(path), proto };
  await checkExternalData(model);
  return model;
}

/**
 * The tensors of a model besides its graph's initializers, where external data may also be:
 * sparse initializers, node attributes (a Constant's value), subgraphs (If, Loop and Scan
 * bodies, with their own initializers) and functions.
 */
export function* nestedTensors(proto: ModelProto): Generator<TensorProto> {
  const ofNodes = function* (nodes: readonly NodeProto[]): Generator<TensorProto> {
    for (const a of nodes.flatMap((n) => n.attribute ?? [])) {
      if (a.t) yield a.t;
      yield* a.tensors ?? [];
      for (const s of [...(a.sparseTensor ? [a.sparseTensor] : []), ...(a.sparseTensors ?? [])]) {
        if (s.values) yield s.values;
        if (s.indices) yield s.indices;
      }
      for (const g of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) {
        yield* g.initializer ?? [];
        yield* ofGraph(g);
      }
    }
  };
  const ofGraph = function* (g: onnxProto.onnx.IGraphProto): Generator<TensorProto> {
    for (const s of g.sparseInitializer ?? []) {
      if (s.values) yield s.values;
      if (s.indices) yield s.indices;
    }
    yield* ofNodes(g.node ?? []);
  };
  yield* ofGraph(proto.graph!);
  for (const f of proto.functions ?? []) yield* ofNodes(f.node ?? []);
}

/**
 * Every external-data reference of the model (its initializers and nested tensors) points at a
 * file in the model's folder that holds its bytes: checked once, from the files' sizes, so that
 * a hostile or truncated model is refused in one line before any engine reads it (the bytes are
 * not read).
 */
async function checkExternalData(model: LoadedModel): Promise<void> {
  const sizes = new Map<string, Promise<PathInfo | Error>>();
  for (const t of [...(model.proto.graph!.initializer ?? []), ...nestedTensors(model.proto)]) {
    const ref = externalRef(t, model.dir, model.path);
    if (ref === undefined) continue;
    if (!sizes.has(ref.file))
      sizes.set(
        ref.file,
        statPath(ref.file).catch((e: Error) => e),
      );
    const info = await sizes.get(ref.file)!;
    const bad = (why: string) =>
      new AvgCkptError('invalid-onnx', `external data "${ref.location}" ${why}`, {
        file: model.path,
        tensor: t.name ?? '',
      });
    if (info instanceof Error)
      throw bad(
        (info as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${info.message})`,
      );
    if (info.kind !== 'file')
      throw bad(`is ${info.kind === 'dir' ? 'a folder' : 'not a regular file'}, not a data file`);
    if (ref.offset + ref.length > info.size)
      throw bad(
        `runs past the end of its file: offset ${ref.offset} + length ${ref.length} > ${info.size} bytes (truncated?)`,
      );
  }
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
  /** The data file's path: `location` inside the model's folder. */
  readonly file: string;
  /** As the model wrote it, for messages. */
  readonly location: string;
  readonly offset: number;
  readonly length: number;
}

/** A non-negative integer written in decimal, as onnx writes offsets and lengths. */
function byteCount(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  return /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : Number.NaN;
}

/**
 * The external-data reference of `t`, or undefined when its data is in the graph. A model is a
 * user's file: a location must stay inside the model's folder (no absolute path, no `..` out of
 * it, as onnx's own checker demands) and offset and length must be byte counts that cover
 * exactly the tensor, else the model is refused here, naming the initializer.
 */
export function externalRef(t: TensorProto, dir: string, model: string): ExternalRef | undefined {
  if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return undefined;
  const tensor = t.name ?? '';
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) throw new AvgCkptError('invalid-onnx', 'external data has no location', { file: model, tensor });
  const file = childInside(dir, location);
  if (file === undefined)
    throw new AvgCkptError(
      'invalid-onnx',
      `external data location "${location}" is absolute or leaves the model's folder; it must name a file beside the model`,
      { file: model, tensor },
    );
  const expected = numel(dimsOf(t)) * elementBytes(t.dataType ?? 0);
  const offset = byteCount(kv.get('offset'), 0);
  const length = byteCount(kv.get('length'), expected);
  if (Number.isNaN(offset) || Number.isNaN(length))
    throw new AvgCkptError(
      'invalid-onnx',
      `external data "${location}" has offset "${kv.get('offset')}" and length "${kv.get('length')}": byte counts expected`,
      { file: model, tensor },
    );
  if (length !== expected)
    throw new AvgCkptError(
      'invalid-onnx',
      `external data "${location}" has length ${length}, but the tensor's ${dimsOf(t).join('x') || 'scalar'} ${dtypeName(t.dataType ?? 0)} takes ${expected} bytes`,
      { file: model, tensor },
    );
  return { file, location, offset, length };
}

/** Makes `t` point at `length` bytes at `offset` of `location` (relative to the session's folder). */
export function setExternal(t: TensorProto, location: string, offset: number, length: number): void {
  // no raw_data field at all: onnx's checker refuses an external tensor that has one, even empty
  t.rawData = null;
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

/** Pieces of external data read at once: large enough for sequential reads, small next to a model. */
const PIECE = 8 << 20;

/**
 * Hands an initializer's bytes to `each`, in order: external data in pieces read from its file
 * (the piece's buffer is reused: `each` must be done with it when its promise settles), so that
 * a tensor of gigabytes is copied without ever being whole in memory; data in the graph at once.
 */
export async function forEachPiece(
  t: TensorProto,
  model: LoadedModel,
  each: (piece: Uint8Array) => Promise<void>,
): Promise<void> {
  const ext = externalRef(t, model.dir, model.path);
  if (ext === undefined) return each(await tensorBytes(t, model));
  const doing = `read external data "${ext.location}" of initializer "${t.name}"`;
  const reader = await openReader(ext.file).catch((e) => {
    throw storageError(ext.file, e, doing);
  });
  try {
    const piece = new Uint8Array(Math.min(PIECE, ext.length));
    for (let done = 0; done < ext.length; ) {
      const part = piece.subarray(0, Math.min(piece.byteLength, ext.length - done));
      await reader.read(ext.offset + done, part).catch((e) => {
        throw storageError(ext.file, e, doing);
      });
      await each(part);
      done += part.byteLength;
    }
  } finally {
    await reader.close();
  }
}

/** An initializer's data as little-endian bytes, in its own element type. */
export async function tensorBytes(t: TensorProto, model: LoadedModel): Promise<Uint8Array> {
  const type = t.dataType ?? 0;
  const n = numel(dimsOf(t));
  const size = elementBytes(type);
  if (externalRef(t, model.dir, model.path) !== undefined) {
    const out = new Uint8Array(n * size);
    let at = 0;
    await forEachPiece(t, model, async (piece) => {
      out.set(piece, at);
      at += piece.byteLength;
    });
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
