/**
 * The materialize engine: each candidate's average is streamed into an external-data file
 * beside a copy of the graph, and a session is created from that path with prepacking off (the
 * runtime then maps the file instead of copying it). Memory is one model, not K; the cost is a
 * session per candidate. The same averaging bakes the winner into a ready-to-serve ONNX file.
 */
import { mkdtempSync } from 'node:fs';
import { open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { ioError } from '../errors.js';
import { FilePool } from '../io/storage/file-pool.js';
import { checkpointInputs, guardOutputs } from '../io/output-guard.js';
import { onnxCodeOf } from '../io/dtype.js';
import {
  copyModel,
  elementBytes,
  encodeModel,
  externalRef,
  forEachPiece,
  nestedTensors,
  numel,
  setExternal,
  tensorBytes,
  type LoadedModel,
  type ModelProto,
  type TensorProto,
} from '../io/onnx/model.js';
import { bytesData, externalDataPath, writeModel, type TensorData } from '../io/onnx/model-writer.js';
import { PositionalWriter } from '../io/positional-writer.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { Binding } from './binding.js';
import { evaluationInputs } from './inputs.js';
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
import { trackTemporary, untrackTemporary } from '../io/atomic-output.js';

const DATA_FILE = 'weights.bin';
const ALIGN = 64;

interface Layout {
  readonly proto: ModelProto;
  /** Where each slot's bytes go in the data file. */
  readonly offsets: Map<WeightSlot, number>;
  /** Bytes written once: integers from the newest checkpoint, external data of unbound initializers. */
  readonly fixed: { offset: number; data: TensorData }[];
  /** The data file's length. */
  readonly size: number;
}

/** A copy of the graph whose bound (and externally stored) initializers point into `weights.bin`. */
async function layout(
  model: LoadedModel,
  binding: Binding,
  slots: readonly WeightSlot[],
  newest: Checkpoint,
  pool: FilePool,
): Promise<Layout> {
  const proto = copyModel(model);
  let end = 0;
  const reserve = (length: number) => {
    const at = Math.ceil(end / ALIGN) * ALIGN;
    end = at + length;
    return at;
  };
  const offsets = new Map<WeightSlot, number>();
  for (const s of slots) offsets.set(s, reserve(slotBytes(s)));
  const fixed: { offset: number; data: TensorData }[] = [];
  for (const t of proto.graph!.initializer ?? []) {
    const slot = slots.find((s) => s.members.some((m) => m.initializer === t.name));
    const data = slot === undefined ? await keptData(t, model, binding, newest, pool) : undefined;
    if (slot) {
      setExternal(t, DATA_FILE, offsets.get(slot)!, slotBytes(slot));
    } else if (data !== undefined) {
      fixed.push({ offset: reserve(data.byteLength), data });
      setExternal(t, DATA_FILE, fixed[fixed.length - 1].offset, data.byteLength);
    }
  }
  return { proto, offsets, fixed, size: end };
}

/**
 * The bytes of an initializer no candidate changes that cannot stay as the graph holds it: an
 * integer taken from the newest checkpoint, or external data (streamed: it may be gigabytes).
 */
async function keptData(
  t: TensorProto,
  model: LoadedModel,
  binding: Binding,
  newest: Checkpoint,
  pool: FilePool,
): Promise<TensorData | undefined> {
  const integer = binding.integers.find((i) => i.initializer === t.name);
  const src = integer && newest.tensors.get(integer.source);
  if (src && onnxCodeOf(src.dtype) === t.dataType) return bytesData(await readBytes(pool, src));
  const ext = externalRef(t, model.dir, model.path);
  // read later, when `t` itself points at the output: a copy keeps where its bytes are now
  const source = { ...t };
  return ext && { byteLength: ext.length, produce: (each) => forEachPiece(source, model, each) };
}

/** A file-system call with the tool's one-line error naming the file (never a bare ENOENT and a stack). */
async function wrapFs<T>(file: string, doing: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw ioError(file, e, doing);
  }
}

function slotBytes(s: WeightSlot): number {
  return numel(s.first.dims) * elementBytes(s.first.type);
}

/**
 * The candidates' model in `dir`: the graph, and its weights file with the fixed bytes in place
 * (the slots are written per candidate). On a failure nothing of it stays: a copy of gigabytes of
 * external data may have filled TMPDIR.
 */
async function scratchModel(
  dir: string,
  modelPath: string,
  dataPath: string,
  { proto, fixed, size }: Omit<Layout, 'offsets'>,
): Promise<{ fh: FileHandle; writer: PositionalWriter }> {
  let fh: FileHandle | undefined;
  try {
    await wrapFs(modelPath, 'write the candidate model', () => writeFile(modelPath, encodeModel(proto)));
    fh = await wrapFs(dataPath, 'create the candidate weights file', () => open(dataPath, 'w+'));
    const writer = new PositionalWriter(fh, dataPath, 'write candidate weights');
    for (const f of fixed) {
      writer.at = f.offset;
      await f.data.produce((piece) => writer.write(piece));
    }
    await writer.finish(size); // the zeros skipped at its end included
    return { fh, writer };
  } catch (e) {
    await fh?.close();
    await rm(dir, { recursive: true, force: true });
    untrackTemporary(dir);
    throw e;
  }
}

export async function createMaterialize(
  model: LoadedModel,
  binding: Binding,
  checkpoints: readonly Checkpoint[],
  newest: Checkpoint,
  device: Device,
  threads?: number,
): Promise<ScoringEngine> {
  const pool = new FilePool();
  const slots = weightSlots(binding.weights);
  const { proto, offsets, fixed, size } = await layout(model, binding, slots, newest, pool);
  // made synchronously, then registered at once: a signal handler (which runs on this thread)
  // cannot come in between, and no mkdir queued behind reads in the thread pool can recreate the
  // folder after the handler removed it (both left it behind under load)
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'avg-ckpt-materialize-'));
  } catch (e) {
    await pool.close();
    throw ioError(tmpdir(), e, 'create a temporary folder for the candidate models (set TMPDIR to a writable folder)');
  }
  trackTemporary(dir); // a copy of the model's weights: removed on SIGINT/SIGTERM too
  const modelPath = join(dir, 'model.onnx');
  const dataPath = join(dir, DATA_FILE);
  const { fh, writer } = await scratchModel(dir, modelPath, dataPath, { proto, fixed, size }).catch(async (e) => {
    await pool.close();
    throw e;
  });
  const byStep = new Map(checkpoints.map((ck) => [ck.step, ck]));
  const averager = new SlotAverager(pool, checkpoints, slots, threads);
  // one buffer, as large as the largest slot, takes each average in turn before it is written
  const scratch = new Uint8Array(Math.max(0, ...slots.map(slotBytes)));
  const advice = oneModelAdvice(device);
  return {
    kind: 'materialize',
    async evaluate(vector: WeightVector, batches, fetches, each) {
      const parts = supportOf(vector, byStep);
      for (const slot of slots) {
        const bytes = scratch.subarray(0, slotBytes(slot));
        await averager.average(slot, parts, bytes);
        writer.at = offsets.get(slot)!;
        await writer.write(bytes, false); // the previous candidate's bytes are there
      }
      await wrapFs(dataPath, 'write candidate weights', () => fh.sync());
      const ctx = {
        file: model.path,
        doing: `running the graph on ${device} for ${vector.name}`,
        memoryAdvice: advice,
      };
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(modelPath, {
          executionProviders: sessionProviders(device),
          ...sessionThreads(threads),
          extra: { session: { disable_prepacking: '1' } },
        });
      } catch (e) {
        throw ortError(e, { ...ctx, doing: `creating a session on ${device} for ${vector.name}` });
      }
      try {
        for (const batch of batches) each(await runSession(session, batch.feeds, fetches, ctx), batch);
      } finally {
        await session.release();
      }
    },
    async close() {
      await averager.close();
      await wrapFs(dataPath, 'close the candidate weights file', () => fh.close());
      await pool.close();
      await wrapFs(dir, 'remove the temporary folder', () => rm(dir, { recursive: true, force: true }));
      untrackTemporary(dir);
    },
  };
}

/**
 * Writes the graph with `vector`'s average baked in, a tensor at a time (never the whole model in
 * memory): one self-contained .onnx a server can load, or past protobuf's 2 GiB the graph and
 * `OUT.data` (io/onnx/model-writer.ts). Returns the files written.
 */
export async function writeBakedModel(
  model: LoadedModel,
  binding: Binding,
  checkpoints: readonly Checkpoint[],
  newest: Checkpoint,
  vector: WeightVector,
  output: string,
  force: boolean,
): Promise<string[]> {
  await guardOutputs(
    [
      { path: output, role: 'ONNX output' },
      { path: externalDataPath(output), role: 'external data of the ONNX output' },
    ],
    [...checkpointInputs(checkpoints), ...(await evaluationInputs(model.path, {}, model))],
  );
  const pool = new FilePool();
  try {
    const proto = copyModel(model);
    const parts = supportOf(vector, new Map(checkpoints.map((ck) => [ck.step, ck])));
    const slots = weightSlots(binding.weights);
    const averager = new SlotAverager(pool, checkpoints, slots);
    // one buffer, as large as the largest slot, takes each average in turn while it is written
    const scratch = new Uint8Array(Math.max(0, ...slots.map(slotBytes)));
    // one TensorData per slot: tied initializers can share their bytes in OUT.data
    const averages = new Map<WeightSlot, TensorData>(
      slots.map((slot) => [
        slot,
        {
          byteLength: slotBytes(slot),
          async produce(each) {
            const bytes = scratch.subarray(0, slotBytes(slot));
            await averager.average(slot, parts, bytes);
            await each(bytes);
          },
        },
      ]),
    );
    const data = new Map<TensorProto, TensorData>();
    for (const t of proto.graph!.initializer ?? []) {
      const slot = slots.find((s) => s.members.some((m) => m.initializer === t.name));
      const d = slot === undefined ? await keptData(t, model, binding, newest, pool) : averages.get(slot);
      if (d !== undefined) data.set(t, d);
    }
    // external data elsewhere (a Constant's value, a subgraph's initializer) would point into the
    // input's folder from the output's: it moves into the graph (such tensors are small)
    for (const t of nestedTensors(proto)) {
      if (externalRef(t, model.dir, model.path) === undefined) continue;
      const bytes = await tensorBytes(t, model);
      Object.assign(t, { externalData: [], dataLocation: undefined, rawData: bytes });
    }
    try {
      return await writeModel(proto, data, output, force);
    } finally {
      await averager.close();
    }
  } finally {
    await pool.close();
  }
}
