/**
 * Writing an ONNX model whose initializers' bytes are produced one tensor at a time (averaged,
 * copied from external data), so that the whole model is never in memory. Up to `inlineLimit()`
 * bytes it is one self-contained file, its protobuf encoded by hand around the tensors' bytes;
 * beyond, protobuf's 2 GiB limit on a message forbids one file, and the graph refers to
 * `OUT.data` instead (onnx's external-data layout, as `onnx.save_model(...,
 * save_as_external_data=True)` writes it). Either way the files are committed atomically.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { AvgCkptError, ioError } from '../../errors.js';
import { AtomicOutput } from '../atomic-output.js';
import { PositionalWriter } from '../positional-writer.js';
import { encodeModel, onnx, setExternal, type ModelProto, type TensorProto } from './model.js';

/** An initializer's new bytes: how many, and a function that hands them over in order. */
export interface TensorData {
  readonly byteLength: number;
  /** Calls `each` with consecutive pieces; a piece may be reused once `each`'s promise settles. */
  produce(each: (piece: Uint8Array) => Promise<void>): Promise<void>;
}

/** Bytes already in memory, as TensorData. */
export function bytesData(bytes: Uint8Array): TensorData {
  return { byteLength: bytes.byteLength, produce: (each) => each(bytes) };
}

/** Where the external data of the model written to `output` goes: `OUT.data`, beside it. */
export function externalDataPath(output: string): string {
  return `${output}.data`;
}

/** The environment variable that overrides the inline limit (bytes), for tests on small models. */
export const INLINE_LIMIT_ENV = 'AVG_CKPT_ONNX_INLINE_LIMIT';
/** Protobuf's hard limit on one message (and so on one .onnx file): 2 GiB - 1. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;
/** Headroom below it for readers that count their limit differently. */
const MARGIN = 64 << 20;
/** Offsets in OUT.data are multiples of this, so that runtimes can map each tensor from a page boundary. */
export const EXTERNAL_ALIGN = 4096;
/** Tensors smaller than this stay inline in an external-data model (onnx's default size_threshold). */
const EXTERNAL_MIN = 1024;

/** The largest model written as one file: 2 GiB less a margin, or `AVG_CKPT_ONNX_INLINE_LIMIT`. */
export function inlineLimit(env: NodeJS.ProcessEnv = process.env): number {
  const v = env[INLINE_LIMIT_ENV];
  if (v === undefined || v === '') return PROTOBUF_LIMIT - MARGIN;
  if (!/^\d+$/.test(v)) throw new AvgCkptError('usage', `${INLINE_LIMIT_ENV}=${v}: a number of bytes expected`);
  return Math.min(Number(v), PROTOBUF_LIMIT);
}

/** Protobuf's base-128 varint of a non-negative integer (lengths here stay below 2^53). */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  out.push(n);
  return Uint8Array.from(out);
}

/** The key of a length-delimited field (wire type 2). */
const key = (field: number) => varint((field << 3) | 2);
const GRAPH_INITIALIZER = 5;
const MODEL_GRAPH = 7;
const TENSOR_RAW_DATA = 9;

/** `t` with no data of its own: what precedes the raw_data field written after it. */
function withoutData(t: TensorProto): TensorProto {
  return {
    ...t,
    rawData: undefined,
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    doubleData: [],
    uint64Data: [],
    externalData: [],
    dataLocation: undefined,
  };
}

/** Runs `write` on a fresh temporary file of `out`, then closes it (a failure removes it). */
async function fill(out: AtomicOutput, write: (w: PositionalWriter) => Promise<void>): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(out.tempPath, 'w');
  } catch (e) {
    throw ioError(out.target, e, 'create the ONNX model');
  }
  try {
    const w = new PositionalWriter(fh, out.target, 'write the ONNX model');
    await write(w);
    await w.finish(w.at);
  } finally {
    await fh.close();
  }
}

/**
 * Writes `proto` to `output`, each initializer in `data` with those bytes (the others as they
 * are; none of them may refer to external data). Returns the files written: `[output]`, or
 * `[output, output.data]` when the model exceeds `limit` bytes.
 */
export async function writeModel(
  proto: ModelProto,
  data: ReadonlyMap<TensorProto, TensorData>,
  output: string,
  force: boolean,
  limit = inlineLimit(),
): Promise<string[]> {
  const graph = proto.graph!;
  const inits = graph.initializer ?? [];
  const external = inits.find((t) => !data.has(t) && t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
  if (external !== undefined)
    throw new AvgCkptError('internal', `writeModel: initializer "${external.name}" still refers to external data`);
  // each initializer as a GraphProto field: a prefix (key, length, the tensor without its data), then its bytes
  const entries = inits.map((t) => {
    const d = data.get(t);
    if (d === undefined) {
      const whole = onnx.TensorProto.encode(t).finish();
      return { prefix: [key(GRAPH_INITIALIZER), varint(whole.byteLength), whole], data: undefined };
    }
    const head = [onnx.TensorProto.encode(withoutData(t)).finish(), key(TENSOR_RAW_DATA), varint(d.byteLength)];
    const length = head.reduce((s, b) => s + b.byteLength, 0) + d.byteLength;
    return { prefix: [key(GRAPH_INITIALIZER), varint(length), ...head], data: d };
  });
  const rest = onnx.GraphProto.encode({ ...graph, initializer: [] }).finish();
  const graphLength = entries.reduce(
    (s, e) => s + e.prefix.reduce((a, b) => a + b.byteLength, 0) + (e.data?.byteLength ?? 0),
    rest.byteLength,
  );
  const model = onnx.ModelProto.encode({ ...proto, graph: undefined }).finish();
  const head = [model, key(MODEL_GRAPH), varint(graphLength), rest];
  // the file: the model's other fields, the graph's key and length, then the graph (rest + entries)
  if (model.byteLength + key(MODEL_GRAPH).byteLength + varint(graphLength).byteLength + graphLength <= limit) {
    const out = await AtomicOutput.begin(output, 'file', force);
    try {
      // fields may come in any order: the graph's initializers follow its other fields
      await fill(out, async (w) => {
        for (const b of head) await w.write(b);
        for (const e of entries) {
          for (const b of e.prefix) await w.write(b);
          await e.data?.produce((piece) => w.write(piece));
        }
      });
      await out.commit();
    } catch (e) {
      await out.abort();
      throw e;
    }
    return [output];
  }
  return writeExternal(proto, data, output, force);
}

/** The model as `output` (the graph) + `output.data` (every tensor of EXTERNAL_MIN bytes or more). */
async function writeExternal(
  proto: ModelProto,
  data: ReadonlyMap<TensorProto, TensorData>,
  output: string,
  force: boolean,
): Promise<string[]> {
  const dataPath = externalDataPath(output);
  const location = basename(dataPath);
  const outs: AtomicOutput[] = [];
  try {
    outs.push(await AtomicOutput.begin(dataPath, 'file', force));
    outs.push(await AtomicOutput.begin(output, 'file', force));
    await fill(outs[0], async (w) => {
      // one placement per TensorData: tied initializers share their bytes
      const placed = new Map<TensorData, number>();
      for (const t of proto.graph!.initializer ?? []) {
        const d = data.get(t) ?? (t.rawData && t.rawData.byteLength >= EXTERNAL_MIN ? bytesData(t.rawData) : undefined);
        if (d === undefined) continue;
        if (d.byteLength < EXTERNAL_MIN) {
          const pieces: Uint8Array[] = [];
          await d.produce(async (piece) => void pieces.push(piece.slice()));
          Object.assign(t, withoutData(t), { rawData: Buffer.concat(pieces) });
          continue;
        }
        let offset = placed.get(d);
        if (offset === undefined) {
          offset = Math.ceil(w.at / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
          await w.write(new Uint8Array(offset - w.at));
          await d.produce((piece) => w.write(piece));
          placed.set(d, offset);
        }
        setExternal(t, location, offset, d.byteLength);
      }
    });
    const graph = encodeModel(proto);
    await fill(outs[1], (w) => w.write(graph));
    // the data first: a graph in place always finds its data
    for (const out of outs) await out.commit();
  } catch (e) {
    for (const out of outs) await out.abort();
    throw e;
  }
  return [output, dataPath];
}
