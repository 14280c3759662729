/**
 * The fed engine: one session, built once, in which every initializer bound to a checkpoint
 * tensor is a graph input instead (the rest stay constants). For each candidate the average is
 * formed in float64 (in one streamed pass over every weight, the merge engine's SIMD kernels on
 * every core), rounded once to the
 * initializer's element type into one buffer per weight that every candidate reuses, and fed
 * with each batch. Memory: one model of averages plus the runtime's own, whatever K. The price:
 * weights that are inputs are not prepacked for MatMul (docs/benchmarks.md measures it).
 */
import ort from 'onnxruntime-node';
import { onnxCodeOf, ONNX_DTYPE } from '../io/dtype.js';
import { FilePool } from '../io/storage/file-pool.js';
import { encodeModel, numel, onnx, type LoadedModel, type NodeProto, type TensorProto } from '../io/onnx/model.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { Binding } from './binding.js';
import { sessionProviders, sessionThreads, type Device } from './device.js';
import {
  oneModelAdvice,
  ortError,
  runSession,
  supportOf,
  weightSlots,
  type ScoringEngine,
  type WeightSlot,
} from './engine.js';
import { SlotAverager } from './slot-average.js';
import { readBytes } from './tensor-read.js';

/** A slot's graph input: its name, and the buffer every candidate's average is written into. */
interface Feed {
  readonly slot: WeightSlot;
  readonly input: string;
  readonly tensor: ort.Tensor;
  /** The average's bytes in the initializer's own element type (for bfloat16: the first half of the float32 buffer). */
  readonly bytes: Uint8Array;
  readonly widen: boolean;
}

/**
 * bfloat16 cannot cross the runtime's API: such a weight is fed as float32 holding the exact
 * bfloat16 values (rounded once from float64) and cast back inside the graph, which is exact.
 */
function feedFor(slot: WeightSlot, j: number): Feed {
  const b = slot.first;
  const n = numel(b.dims);
  const dims = [...b.dims];
  if (b.type === ONNX_DTYPE.BFLOAT16) {
    const values = new Float32Array(n);
    return {
      slot,
      input: `avg_ckpt/fed/${j}`,
      tensor: new ort.Tensor('float32', values, dims),
      bytes: new Uint8Array(values.buffer, 0, n * 2),
      widen: true,
    };
  }
  const values =
    b.type === ONNX_DTYPE.FLOAT
      ? new Float32Array(n)
      : b.type === ONNX_DTYPE.DOUBLE
        ? new Float64Array(n)
        : new Uint16Array(n);
  const type = b.type === ONNX_DTYPE.FLOAT ? 'float32' : b.type === ONNX_DTYPE.DOUBLE ? 'float64' : 'float16';
  return {
    slot,
    input: b.initializer,
    tensor: new ort.Tensor(type, values, dims),
    bytes: new Uint8Array(values.buffer),
    widen: false,
  };
}

/**
 * bfloat16 bit patterns in the first half of a float32 buffer, widened in place to the float32
 * of the same value. Backwards, so that element i is read before any write reaches it.
 */
function widenBf16(bytes: Uint8Array): void {
  const n = bytes.byteLength / 2;
  const half = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  const full = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  for (let i = n - 1; i >= 0; i--) full[i] = half[i] << 16;
}

/**
 * The user's graph with the bound initializers turned into inputs (tied ones read the same
 * input) and integer initializers taken from the newest checkpoint. The loaded model is not
 * copied: its graph's lists are swapped for the encoding and put back.
 */
async function fedGraph(
  model: LoadedModel,
  binding: Binding,
  feeds: readonly Feed[],
  newest: Checkpoint,
  pool: FilePool,
): Promise<Uint8Array> {
  const graph = model.proto.graph!;
  const bound = new Set(binding.weights.map((w) => w.initializer));
  const initializer: TensorProto[] = [];
  for (const t of graph.initializer ?? []) {
    if (bound.has(t.name ?? '')) continue;
    const integer = binding.integers.find((i) => i.initializer === t.name);
    const src = integer && newest.tensors.get(integer.source);
    initializer.push(
      src && onnxCodeOf(src.dtype) === t.dataType
        ? onnx.TensorProto.create({
            name: t.name,
            dataType: t.dataType,
            dims: t.dims,
            rawData: await readBytes(pool, src),
          })
        : t,
    );
  }
  const node: NodeProto[] = [];
  const input = (graph.input ?? []).filter((i) => !bound.has(i.name ?? ''));
  for (const f of feeds) {
    const b = f.slot.first;
    const elemType = f.widen ? ONNX_DTYPE.FLOAT : b.type;
    input.push({
      name: f.input,
      type: { tensorType: { elemType, shape: { dim: b.dims.map((d) => ({ dimValue: d })) } } },
    });
    for (const m of f.slot.members) {
      if (m.initializer === f.input) continue;
      node.push(
        f.widen
          ? {
              opType: 'Cast',
              input: [f.input],
              output: [m.initializer],
              attribute: [{ name: 'to', type: 2, i: ONNX_DTYPE.BFLOAT16 }],
            }
          : { opType: 'Identity', input: [f.input], output: [m.initializer] },
      );
    }
  }
  const saved = { initializer: graph.initializer, input: graph.input, node: graph.node };
  try {
    Object.assign(graph, { initializer, input, node: [...node, ...(graph.node ?? [])] });
    return encodeModel(model.proto);
  } finally {
    Object.assign(graph, saved);
  }
}

export async function createFed(
  model: LoadedModel,
  binding: Binding,
  checkpoints: readonly Checkpoint[],
  newest: Checkpoint,
  device: Device,
  threads?: number,
): Promise<ScoringEngine> {
  const pool = new FilePool();
  const feeds = weightSlots(binding.weights).map(feedFor);
  const advice = oneModelAdvice(device);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(await fedGraph(model, binding, feeds, newest, pool), {
      executionProviders: sessionProviders(device),
      ...sessionThreads(threads),
      // unbound initializers stored as external data stay where the model keeps them
      extra: { session: { model_external_initializers_file_folder_path: model.dir } },
    });
  } catch (e) {
    await pool.close();
    throw ortError(e, { file: model.path, doing: `creating the fed session on ${device}`, memoryAdvice: advice });
  }
  const averager = new SlotAverager(
    pool,
    checkpoints,
    feeds.map((f) => f.slot),
    threads,
  );
  const outputs = feeds.map((f) => ({ slot: f.slot, out: f.bytes }));
  const byStep = new Map(checkpoints.map((ck) => [ck.step, ck]));
  const weights = Object.fromEntries(feeds.map((f) => [f.input, f.tensor]));
  return {
    kind: 'fed',
    async evaluate(vector: WeightVector, batches, fetches, each) {
      const parts = supportOf(vector, byStep);
      await averager.averageAll(outputs, parts);
      for (const f of feeds) if (f.widen) widenBf16(f.bytes);
      const ctx = {
        file: model.path,
        doing: `running the graph on ${device} for ${vector.name}`,
        memoryAdvice: advice,
      };
      for (const batch of batches) each(await runSession(session, { ...batch.feeds, ...weights }, fetches, ctx), batch);
    },
    async close() {
      await averager.close();
      await session.release();
      await pool.close();
    },
  };
}
