/**
 * The mixture engine: one session in which every bound weight is
 * `Reshape(MatMul(a[1,K], S[K,n]))`, `a` a graph input, so each candidate is one `run`.
 *
 * S is never copied by us: each checkpoint's tensor is an external-data initializer pointing
 * into its safetensors file (location, offset, length), and a Cast/Transpose/Reshape/Concat
 * chain over them is constant-folded by the runtime once, when the session is created. The
 * runtime refuses external paths outside the model's folder (symlinks are resolved), so the
 * graph is loaded from memory with its external-data folder set to the files' common ancestor.
 */
import { realpath } from 'node:fs/promises';
import { dirname, relative, sep } from 'node:path';
import ort from 'onnxruntime-node';
import { encodeModel, externalRef, numel, onnx, ONNX_DTYPE, setExternal, type LoadedModel, type NodeProto, type TensorProto } from '../io/onnx/model.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { Binding } from './binding.js';
import { sessionProviders, type Device } from './device.js';
import { ortError, runSession, supportOf, weightSlots, type ScoringEngine } from './engine.js';
import { onnxTypeOf } from './tensor-read.js';

export const MIXTURE_INPUT = 'avg_ckpt_weights';

/** Bytes the session holds for the stacked weights: K float32 copies of every bound weight. */
export function mixtureBytes(binding: Binding, k: number): number {
  return weightSlots(binding.weights).reduce((s, slot) => s + k * numel(slot.first.dims) * 4, 0);
}

/** The largest stacked weight S = [K, n] the mixture would hold, in bytes, and its initializer. */
export function largestStack(binding: Binding, k: number): { name: string; bytes: number } | undefined {
  let out: { name: string; bytes: number } | undefined;
  for (const slot of weightSlots(binding.weights)) {
    const bytes = k * numel(slot.first.dims) * 4;
    if (out === undefined || bytes > out.bytes) out = { name: slot.first.initializer, bytes };
  }
  return out;
}

/** Why the mixture cannot be built for these checkpoints, if it cannot. */
export function mixtureUnsupported(binding: Binding, newest: Checkpoint): string | undefined {
  for (const slot of weightSlots(binding.weights)) {
    const d = newest.tensors.get(slot.first.source)?.dtype;
    if (d === undefined || ![ONNX_DTYPE.FLOAT, ONNX_DTYPE.FLOAT16, ONNX_DTYPE.BFLOAT16, ONNX_DTYPE.DOUBLE].includes(onnxTypeOf(d) as 1)) {
      return `tensor "${slot.first.source}" is ${d}, which the runtime cannot cast`;
    }
  }
  return undefined;
}

function commonFolder(paths: readonly string[]): string {
  let parts = dirname(paths[0]).split(sep);
  for (const p of paths.slice(1)) {
    const q = dirname(p).split(sep);
    let i = 0;
    while (i < parts.length && i < q.length && parts[i] === q[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join(sep) || sep;
}

function int64Const(name: string, values: readonly number[]): TensorProto {
  return { name, dataType: ONNX_DTYPE.INT64, dims: [values.length], int64Data: [...values] };
}

/** Builds the mixture graph over `checkpoints` (the K the candidates touch, in step order). */
export async function mixtureGraph(model: LoadedModel, binding: Binding, checkpoints: readonly Checkpoint[], newest: Checkpoint): Promise<{ bytes: Uint8Array; folder: string }> {
  const proto = onnx.ModelProto.decode(encodeModel(model.proto));
  const graph = proto.graph!;
  const real = new Map<string, string>();
  const files: string[] = [];
  const track = async (file: string) => {
    if (!real.has(file)) real.set(file, await realpath(file));
    files.push(real.get(file)!);
  };
  const slots = weightSlots(binding.weights);
  for (const slot of slots) for (const ck of checkpoints) await track(ck.tensors.get(slot.first.source)!.file);
  for (const b of binding.integers) await track(newest.tensors.get(b.source)!.file);
  const kept = (graph.initializer ?? []).filter((t) => !binding.weights.some((w) => w.initializer === t.name));
  for (const t of kept) {
    const ext = externalRef(t, model.dir, model.path);
    if (ext) await track(ext.file);
  }
  const folder = files.length > 0 ? commonFolder(files) : model.dir;
  const rel = (file: string) => relative(folder, real.get(file)!);

  for (const t of kept) {
    const ext = externalRef(t, model.dir, model.path);
    if (ext) setExternal(t, rel(ext.file), ext.offset, ext.length);
    const b = binding.integers.find((i) => i.initializer === t.name);
    const src = b && newest.tensors.get(b.source);
    if (src && onnxTypeOf(src.dtype) === t.dataType) setExternal(t, rel(src.file), src.position, src.byteLength);
  }

  const inits: TensorProto[] = [...kept];
  const nodes: NodeProto[] = [];
  slots.forEach((slot, j) => {
    const b = slot.first;
    const n = numel(b.dims);
    const p = `avg_ckpt/${j}`;
    inits.push(int64Const(`${p}/row`, [1, n]), int64Const(`${p}/shape`, b.dims));
    const rows = checkpoints.map((ck, k) => {
      const src = ck.tensors.get(b.source)!;
      const name = `${p}/ck${k}`;
      // external bytes take any dims: declaring the row shape [1, n] saves a folded Reshape copy
      const t: TensorProto = { name, dataType: onnxTypeOf(src.dtype), dims: b.transform === 'transpose' ? [...src.shape] : [1, n] };
      setExternal(t, rel(src.file), src.position, src.byteLength);
      inits.push(t);
      let x = name;
      if (t.dataType !== ONNX_DTYPE.FLOAT) nodes.push({ opType: 'Cast', input: [x], output: [(x = `${name}/f32`)], attribute: [{ name: 'to', type: 2, i: ONNX_DTYPE.FLOAT }] });
      if (b.transform === 'transpose') {
        nodes.push({ opType: 'Transpose', input: [x], output: [`${name}/t`], attribute: [{ name: 'perm', type: 7, ints: [1, 0] }] });
        nodes.push({ opType: 'Reshape', input: [`${name}/t`, `${p}/row`], output: [(x = `${name}/row`)] });
      }
      return x;
    });
    nodes.push({ opType: 'Concat', input: rows, output: [`${p}/S`], attribute: [{ name: 'axis', type: 2, i: 0 }] });
    nodes.push({ opType: 'MatMul', input: [MIXTURE_INPUT, `${p}/S`], output: [`${p}/sum`] });
    const direct = b.type === ONNX_DTYPE.FLOAT;
    nodes.push({ opType: 'Reshape', input: [`${p}/sum`, `${p}/shape`], output: [direct ? b.initializer : `${p}/avg`] });
    if (!direct) nodes.push({ opType: 'Cast', input: [`${p}/avg`], output: [b.initializer], attribute: [{ name: 'to', type: 2, i: b.type }] });
    for (const other of slot.members.slice(1)) nodes.push({ opType: 'Identity', input: [b.initializer], output: [other.initializer] });
  });
  const bound = new Set(binding.weights.map((w) => w.initializer));
  graph.initializer = inits;
  graph.node = [...nodes, ...(graph.node ?? [])];
  graph.input = [
    ...(graph.input ?? []).filter((i) => !bound.has(i.name ?? '')),
    { name: MIXTURE_INPUT, type: { tensorType: { elemType: ONNX_DTYPE.FLOAT, shape: { dim: [{ dimValue: 1 }, { dimValue: checkpoints.length }] } } } },
  ];
  return { bytes: encodeModel(proto), folder };
}

/** What to do when the mixture does not fit: every option lowers the K copies it holds. */
const MIXTURE_ADVICE = 'use --engine materialize (about one model in memory), a smaller --memory-budget so that --engine auto picks it, or fewer checkpoints (--last N, --every N)';

export async function createMixture(model: LoadedModel, binding: Binding, checkpoints: readonly Checkpoint[], newest: Checkpoint, device: Device): Promise<ScoringEngine> {
  const { bytes, folder } = await mixtureGraph(model, binding, checkpoints, newest);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: sessionProviders(device),
      // the stacked weights are the MatMul's constant B: prepacking would copy all K of them again
      extra: { session: { model_external_initializers_file_folder_path: folder, disable_prepacking: '1' } },
    });
  } catch (e) {
    throw ortError(e, { file: model.path, doing: `creating the mixture session (${checkpoints.length} checkpoints) on ${device}`, memoryAdvice: MIXTURE_ADVICE });
  }
  const slot = new Map(checkpoints.map((ck, k) => [ck.step, k]));
  const byStep = new Map(checkpoints.map((ck) => [ck.step, ck]));
  return {
    kind: 'mixture',
    async evaluate(vector: WeightVector, batches, fetches, each) {
      const a = new Float32Array(checkpoints.length);
      for (const { ck, w } of supportOf(vector, byStep)) a[slot.get(ck.step)!] = w;
      const weights = new ort.Tensor('float32', a, [1, checkpoints.length]);
      const ctx = { file: model.path, doing: `running the mixture graph (${checkpoints.length} checkpoints) on ${device} for ${vector.name}`, memoryAdvice: MIXTURE_ADVICE };
      for (const batch of batches) each(await runSession(session, { ...batch.feeds, [MIXTURE_INPUT]: weights }, fetches, ctx), batch);
    },
    async close() {
      await session.release();
    },
  };
}
