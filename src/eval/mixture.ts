/**
 * The mixture engine: every bound weight is `Reshape(MatMul(a[1,K], S[K,n]))`, `a` the
 * candidate's weights, so a candidate is a `run` with a new `a`; with several batches the average
 * is formed once per candidate in a session of its own and fed to the graph's session. S is cut
 * into pieces of at most MAX_STACK_BYTES (one MatMul each, their sums joined per run).
 *
 * S is never copied by us: each checkpoint's tensor is an external-data initializer pointing
 * into its safetensors file (location, offset, length), and the Concat (and Cast) over them is
 * constant-folded by the runtime once, when the session is created. The
 * runtime refuses external paths outside the model's folder (symlinks are resolved), so the
 * graph is loaded from memory with its external-data folder set to the files' common ancestor.
 */
import { realpath } from 'node:fs/promises';
import { dirname, relative, sep } from 'node:path';
import type onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { AvgCkptError } from '../errors.js';
import { ONNX_DTYPE, onnxCodeOf } from '../io/dtype.js';
import { isInPlace, type TensorSource } from '../io/formats/tensor-source.js';
import {
  copyModel,
  encodeModel,
  externalRef,
  numel,
  onnx,
  setExternal,
  type LoadedModel,
  type NodeProto,
  type TensorProto,
} from '../io/onnx/model.js';
import { isS3Path } from '../io/storage/s3-location.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { Binding, BoundTensor } from './binding.js';
import { sessionProviders, sessionThreads, type Device } from './device.js';
import { ortError, runSession, supportOf, weightSlots, type ScoringEngine } from './engine.js';

type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

export const MIXTURE_INPUT = 'avg_ckpt_weights';

/** Bytes the session holds for the stacked weights: K float32 copies of every bound weight. */
export function mixtureBytes(binding: Binding, k: number): number {
  return weightSlots(binding.weights).reduce((s, slot) => s + k * numel(slot.first.dims) * 4, 0);
}

/**
 * The most bytes one stacked piece S = [K, elements] may take. onnxruntime constant-folds a node
 * only when its output is at most 1 GiB: a larger stack's Concat was left in the graph and run in
 * every `run`, so the session held the K checkpoint tensors and built their stack again per
 * candidate (docs/benchmarks.md). A WebGPU buffer holds at most 2 GiB (256 MiB ran on lavapipe,
 * docs/gpu.md). Smaller than both, because while a piece is folded its K checkpoint ranges are
 * mapped beside it: a 1 GiB piece added up to 1 GiB to the setup's peak.
 */
export const MAX_STACK_BYTES = 2 ** 28;

/** A contiguous range of a weight's elements (C order, in its checkpoint's layout). */
export interface StackPiece {
  readonly start: number;
  readonly count: number;
}

/**
 * How a weight of `n` elements is cut so that each piece's stack of `k` rows, `bytesPerElement`
 * each, takes at most `maxBytes` (a single element per row when even that does not fit).
 */
export function stackPieces(n: number, k: number, bytesPerElement: number, maxBytes: number): StackPiece[] {
  const per = Math.max(1, Math.floor(maxBytes / (k * bytesPerElement)));
  const out: StackPiece[] = [];
  for (let start = 0; start < n; start += per) out.push({ start, count: Math.min(per, n - start) });
  return out;
}

/** Why the mixture cannot be built for these checkpoints, if it cannot. */
export function mixtureUnsupported(binding: Binding, newest: Checkpoint): string | undefined {
  for (const slot of weightSlots(binding.weights)) {
    const src = newest.tensors.get(slot.first.source);
    // the mixture points onnxruntime at the checkpoint files themselves, which it reads only from disk
    if (src !== undefined && isS3Path(src.file))
      return 'the checkpoints are in object storage, and onnxruntime reads weights only from local files';
    if (src !== undefined && !isInPlace(src)) return `tensor "${src.name}" is a strided or big-endian view in its file`;
    const d = src?.dtype;
    if (
      d === undefined ||
      ![ONNX_DTYPE.FLOAT, ONNX_DTYPE.FLOAT16, ONNX_DTYPE.BFLOAT16, ONNX_DTYPE.DOUBLE].includes(onnxCodeOf(d) as 1)
    ) {
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

/**
 * The mixture's graphs over `checkpoints` (the K the candidates touch, in step order). The mixer
 * maps `a` to one float32 average per weight slot; the scorer is the user's graph taking those
 * averages in place of the bound initializers. With `split` they are two graphs, so that several
 * batches reuse one average; without, the mixer is inlined into the scorer, which saves handing
 * the averages across (a copy of the model per candidate on the CPU) when one run scores all rows.
 * Both point into the same files, relative to `folder`.
 */
export async function mixtureGraphs(
  model: LoadedModel,
  binding: Binding,
  checkpoints: readonly Checkpoint[],
  newest: Checkpoint,
  split: boolean,
  maxStackBytes = MAX_STACK_BYTES,
): Promise<{ mixer?: Uint8Array; scorer: Uint8Array; folder: string }> {
  const proto = copyModel(model);
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
    if (src && isInPlace(src) && onnxCodeOf(src.dtype) === t.dataType)
      setExternal(t, rel(src.file), src.position, src.byteLength);
  }

  const mixInits: TensorProto[] = [];
  const mixNodes: NodeProto[] = [];
  const averages: ValueInfoProto[] = [];
  const unpack: NodeProto[] = [];
  slots.forEach((slot, j) => {
    const b = slot.first;
    const p = `avg_ckpt/${j}`;
    const sources = checkpoints.map((ck) => ck.tensors.get(b.source)!);
    mixSlot(p, b, sources, rel, maxStackBytes, mixInits, mixNodes);
    averages.push(floatInfo(`${p}/avg`, b.dims));
    // the scorer takes float32 (bfloat16 cannot cross the runtime's API) and casts once inside
    for (const m of slot.members) {
      unpack.push(
        b.type === ONNX_DTYPE.FLOAT
          ? { opType: 'Identity', input: [`${p}/avg`], output: [m.initializer] }
          : {
              opType: 'Cast',
              input: [`${p}/avg`],
              output: [m.initializer],
              attribute: [{ name: 'to', type: 2, i: b.type }],
            },
      );
    }
  });
  const weightsInput = floatInfo(MIXTURE_INPUT, [1, checkpoints.length]);
  const bound = new Set(binding.weights.map((w) => w.initializer));
  const inputs = (graph.input ?? []).filter((i) => !bound.has(i.name ?? ''));
  if (!split) {
    graph.initializer = [...kept, ...mixInits];
    graph.node = [...mixNodes, ...unpack, ...(graph.node ?? [])];
    graph.input = [...inputs, weightsInput];
    return { scorer: encodeModel(proto), folder };
  }
  graph.initializer = kept;
  graph.node = [...unpack, ...(graph.node ?? [])];
  graph.input = [...inputs, ...averages];
  const mixer = encodeModel(
    onnx.ModelProto.fromObject({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: { name: 'avg_ckpt_mixer', node: mixNodes, initializer: mixInits, input: [weightsInput], output: averages },
    }),
  );
  return { mixer, scorer: encodeModel(proto), folder };
}

/**
 * One weight's average `${p}/avg` from the candidate's weights: per piece, the K checkpoint
 * ranges (external data in place) are stacked, cast to float32 and mixed by a MatMul; the pieces'
 * sums are joined, reshaped, and transposed when the graph holds the checkpoint's transpose.
 */
function mixSlot(
  p: string,
  bound: BoundTensor,
  sources: readonly TensorSource[],
  rel: (file: string) => string,
  maxStackBytes: number,
  inits: TensorProto[],
  nodes: NodeProto[],
): void {
  const first = sources[0];
  const n = numel(first.shape);
  const size = first.byteLength / n;
  const type = onnxCodeOf(first.dtype);
  // the Concat stacks in the checkpoints' dtype: a float64 stack takes 8 bytes per element
  const pieces = stackPieces(n, sources.length, Math.max(4, size), maxStackBytes);
  const sums = pieces.map(({ start, count }, q) => {
    const rows = sources.map((src, k) => {
      if (!isInPlace(src)) {
        // onnxruntime reads external data as one C-order little-endian run: a view would be read wrong
        throw new AvgCkptError(
          'unsupported-layout',
          'is a strided or big-endian view in its file, which the mixture engine cannot hand to onnxruntime: use --engine materialize',
          { file: src.file, tensor: src.name },
        );
      }
      // external bytes take any dims: declaring the row [1, count] saves a folded Reshape copy
      const t: TensorProto = { name: `${p}/${q}/ck${k}`, dataType: type, dims: [1, count] };
      setExternal(t, rel(src.file), src.position + start * size, count * size);
      inits.push(t);
      return t.name!;
    });
    // Folding keeps each folded output until its pass ends: casting the stack once, rather than
    // each row before the Concat, keeps a half-size 16-bit stack beside S instead of a float32 one.
    let stack = `${p}/${q}/S`;
    nodes.push({ opType: 'Concat', input: rows, output: [stack], attribute: [{ name: 'axis', type: 2, i: 0 }] });
    if (type !== ONNX_DTYPE.FLOAT)
      nodes.push({
        opType: 'Cast',
        input: [stack],
        output: [(stack = `${stack}/f32`)],
        attribute: [{ name: 'to', type: 2, i: ONNX_DTYPE.FLOAT }],
      });
    nodes.push({ opType: 'MatMul', input: [MIXTURE_INPUT, stack], output: [`${p}/${q}/sum`] });
    return `${p}/${q}/sum`;
  });
  let sum = sums[0];
  if (sums.length > 1)
    nodes.push({
      opType: 'Concat',
      input: sums,
      output: [(sum = `${p}/sum`)],
      attribute: [{ name: 'axis', type: 2, i: 1 }],
    });
  if (bound.transform !== 'transpose') {
    inits.push(int64Const(`${p}/shape`, bound.dims));
    nodes.push({ opType: 'Reshape', input: [sum, `${p}/shape`], output: [`${p}/avg`] });
    return;
  }
  // Mixed in the checkpoint's layout and transposed once per candidate: transposing the K rows
  // while folding would keep a transposed copy of each beside S until the pass ends.
  inits.push(int64Const(`${p}/shape`, first.shape));
  nodes.push({ opType: 'Reshape', input: [sum, `${p}/shape`], output: [`${p}/mixed`] });
  nodes.push({
    opType: 'Transpose',
    input: [`${p}/mixed`],
    output: [`${p}/avg`],
    attribute: [{ name: 'perm', type: 7, ints: [1, 0] }],
  });
}

function floatInfo(name: string, dims: readonly number[]): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: ONNX_DTYPE.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  };
}

/** What to do when the mixture does not fit: every option lowers the K copies it holds. */
const MIXTURE_ADVICE =
  'use --engine fed (about one model in memory), a smaller --memory-budget so that --engine auto picks it, or fewer checkpoints (--last N, --every N)';

/**
 * `batches`: how many runs score one candidate; with more than one, the average is formed once in
 * a session of its own. `maxStackBytes`: the largest stacked piece (tests make it small).
 */
export async function createMixture(
  model: LoadedModel,
  binding: Binding,
  checkpoints: readonly Checkpoint[],
  newest: Checkpoint,
  device: Device,
  batches: number,
  maxStackBytes = MAX_STACK_BYTES,
  threads?: number,
): Promise<ScoringEngine> {
  const { mixer, scorer, folder } = await mixtureGraphs(
    model,
    binding,
    checkpoints,
    newest,
    batches > 1,
    maxStackBytes,
  );
  const k = checkpoints.length;
  const create = async (bytes: Uint8Array, what: string, extra: Partial<ort.InferenceSession.SessionOptions> = {}) => {
    try {
      return await ort.InferenceSession.create(bytes, {
        executionProviders: sessionProviders(device),
        ...sessionThreads(threads),
        // the stacked weights are the MatMul's constant B: prepacking would copy all K of them again
        extra: { session: { model_external_initializers_file_folder_path: folder, disable_prepacking: '1' } },
        // With the memory pattern, the second run allocated one block for all of a run's values
        // beside the arena's chunks from the first: +1.2 GiB for one 13000 x 13000 weight, same
        // speed without it (docs/benchmarks.md).
        enableMemPattern: false,
        ...extra,
      });
    } catch (e) {
      throw ortError(e, {
        file: model.path,
        doing: `creating the ${what} session (${k} checkpoints) on ${device}`,
        memoryAdvice: MIXTURE_ADVICE,
      });
    }
  };
  // on a GPU the averages stay in device memory between the two sessions
  const mix =
    mixer && (await create(mixer, 'mixing', device === 'cpu' ? {} : { preferredOutputLocation: 'gpu-buffer' }));
  let score: ort.InferenceSession;
  try {
    score = await create(scorer, mix ? 'scoring' : 'mixture');
  } catch (e) {
    await mix?.release();
    throw e;
  }
  const slot = new Map(checkpoints.map((ck, i) => [ck.step, i]));
  const byStep = new Map(checkpoints.map((ck) => [ck.step, ck]));
  return {
    kind: 'mixture',
    async evaluate(vector: WeightVector, batches, fetches, each) {
      const a = new Float32Array(k);
      for (const { ck, w } of supportOf(vector, byStep)) a[slot.get(ck.step)!] = w;
      const ctx = {
        file: model.path,
        doing: `running the mixture (${k} checkpoints) on ${device} for ${vector.name}`,
        memoryAdvice: MIXTURE_ADVICE,
      };
      const weights = { [MIXTURE_INPUT]: new ort.Tensor('float32', a, [1, k]) };
      const averages = mix ? await runSession(mix, weights, mix.outputNames, ctx) : weights;
      try {
        for (const batch of batches)
          each(await runSession(score, { ...batch.feeds, ...averages }, fetches, ctx), batch);
      } finally {
        if (mix && device !== 'cpu') for (const t of Object.values(averages)) t.dispose();
      }
    },
    async close() {
      await mix?.release();
      await score.release();
    },
  };
}
