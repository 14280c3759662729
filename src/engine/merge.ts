/**
 * `merge`: materialise weight vectors over a checkpoint series into checkpoints that load
 * anywhere (same layout and dtype, config files copied), written atomically: one
 * (`mergeToOutput`), or several in one pass over the inputs (`mergeMany`).
 */
import { sep } from 'node:path';
import { AvgCkptError } from '../errors.js';
import { FilePool } from '../io/storage/file-pool.js';
import { beginOutput, type ByteSink, type Output } from '../io/storage/output.js';
import { kindOf } from '../io/storage/storage.js';
import { checkpointInputs, guardOutputs, type GuardedInput } from '../io/output-guard.js';
import type { WritableFloat } from '../io/dtype.js';
import { layoutPt, PtWriter } from '../io/pytorch/writer.js';
import { tiedNames } from '../io/pytorch/tied.js';
import { byteLengthOf, layoutSafetensors, SafetensorsWriter, type OutputTensor } from '../io/safetensors/writer.js';
import { SAFETENSORS_INDEX_FILE as INDEX_FILE } from '../io/safetensors/format.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import { VERSION } from '../version.js';
import { copyConfigFiles } from './config-files.js';
import type { TensorSource } from '../io/formats/tensor-source.js';
import { planMerge, type MergePlan, type PlannedTensor } from './plan.js';
import { defaultThreads } from './compute.js';
import { MergeStreams, type StreamProgress } from './stream.js';

export interface MergeOptions {
  /** A `.safetensors` file, or a folder (written like the input: shards + index, config files). */
  output: string;
  force?: boolean;
  /** Output dtype for float tensors (default: the input's). */
  dtype?: WritableFloat;
  /** Folder output: shard at this many bytes. */
  shardSize?: number;
  allowNonfinite?: boolean;
  /** Threads for the arithmetic (default: the cores; small merges use fewer). */
  threads?: number;
  /**
   * What else the caller read (the rest of the run, a model, data): the output may not be, hold
   * or lie inside any of them, nor inside the checkpoints averaged (see io/output-guard).
   */
  inputs?: readonly GuardedInput[];
  onProgress?: (p: StreamProgress, plan: MergePlan) => void;
}

export interface MergeResult {
  output: string;
  /** Files written, relative to the output folder (or the output file's name). */
  files: string[];
  plan: MergePlan;
  /** Threads the arithmetic ran on. */
  threads: number;
}

/** File outputs in PyTorch's format (`torch.save` zip); every other file output is safetensors. */
const PT_OUTPUT = /\.(pt|pth|bin)$/i;

/** A folder output is asked for by a trailing slash, an existing folder, or no .safetensors/.pt suffix. */
export function outputKindOf(output: string, existingIsDir: boolean): 'file' | 'dir' {
  if (output.endsWith('/') || output.endsWith(sep) || existingIsDir) return 'dir';
  return output.endsWith('.safetensors') || PT_OUTPUT.test(output) ? 'file' : 'dir';
}

/** The recipe, recorded in every output file's `__metadata__`. */
export function recipeMetadata(plan: MergePlan, newest: Checkpoint): Record<string, string> {
  const v = plan.vector;
  const meta: Record<string, string> = {};
  if (newest.metadata.format !== undefined) meta.format = newest.metadata.format;
  meta.avg_ckpt = JSON.stringify({
    version: VERSION,
    method: v.method,
    name: v.name,
    params: v.params,
    steps: v.steps,
    weights: v.weights,
  });
  return meta;
}

/** stat, not open: opening an existing FIFO at the output path would block forever. */
async function existsAsDir(p: string): Promise<boolean> {
  return (await kindOf(p)) === 'dir';
}

/** A `.pt` output: tied input names share one storage again, their bytes computed once. */
async function ptWriter(
  sink: ByteSink,
  shownAs: string,
  tensors: PlannedTensor[],
  meta: Record<string, string>,
): Promise<{ writer: PtWriter; order: readonly OutputTensor[] }> {
  const aliases = tiedNames(
    tensors.map((t) => ({ name: t.name, dtype: t.dtype, sources: t.contributions.map((c) => c.source) })),
  );
  const layout = layoutPt(tensors, meta, aliases);
  return { writer: await PtWriter.into(sink, layout, shownAs), order: layout.tensors };
}

/**
 * The writer of file `name` of `out` (the output itself for a file output), and its tensors in
 * the order it writes them.
 */
async function fileWriter(
  out: Output,
  name: string | undefined,
  tensors: PlannedTensor[],
  meta: Record<string, string>,
): Promise<{ writer: SafetensorsWriter | PtWriter; order: readonly OutputTensor[] }> {
  const shownAs = out.shownAs(name);
  if (PT_OUTPUT.test(shownAs)) return ptWriter(await out.create(name), shownAs, tensors, meta);
  const layout = layoutSafetensors(tensors, meta);
  return {
    writer: await SafetensorsWriter.into(await out.create(name, layout.fileSize), layout, shownAs),
    order: layout.tensors,
  };
}

/** One output of a pass: its plan, where it goes, and its temporary place until commit. */
interface PassOutput {
  readonly plan: MergePlan;
  readonly output: string;
  readonly kind: 'file' | 'dir';
  readonly meta: Record<string, string>;
  out?: Output;
  readonly files: string[];
}

/**
 * The shape of an output's files (names, tensors, modes, dtypes, shapes): outputs that share it
 * are written in one pass, reading each chunk of each checkpoint once.
 */
function layoutKey(o: PassOutput): string {
  const files = o.plan.files.map(
    (f) => `${f.name}:${f.tensors.map((t) => `${t.name}|${t.mode}|${t.dtype}|${t.shape.join('x')}`).join(',')}`,
  );
  return `${o.kind} ${PT_OUTPUT.test(o.output) ? 'pt' : 'safetensors'}\n${files.join('\n')}`;
}

/** Writes the index of a sharded folder output. */
export async function writeIndex(plan: MergePlan, out: Pick<Output, 'put'>): Promise<void> {
  const weightMap: Record<string, string> = {};
  for (const f of plan.files) for (const t of f.tensors) weightMap[t.name] = f.name;
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)));
  const index = {
    metadata: { total_size: plan.files.reduce((a, f) => a + f.tensors.reduce((b, t) => b + byteLengthOf(t), 0), 0) },
    weight_map: sorted,
  };
  await out.put(INDEX_FILE, new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`));
}

/**
 * Writes `outputs` (all of one layout) in one pass: file by file, each chunk of each input read
 * once and summed into every output that weighs it. Returns the threads used.
 */
async function writePass(
  pool: FilePool,
  outputs: readonly PassOutput[],
  opts: ManyOptions,
  done: StreamProgress,
  bytesToRead: number,
): Promise<number> {
  const plans = outputs.map((o) => o.plan);
  const byFile = outputs[0].plan.files.map((_, f) => outputs.map((o) => o.plan.files[f]));
  const streams = MergeStreams.open(
    pool,
    byFile.map((file) => file.map((f) => f.tensors)),
    opts.threads ?? defaultThreads(),
  );
  try {
    for (const file of byFile) {
      const writers: Array<SafetensorsWriter | PtWriter> = [];
      try {
        const targets = [];
        for (const [m, o] of outputs.entries()) {
          const f = file[m];
          const byName = new Map(f.tensors.map((t) => [t.name, t]));
          const { writer, order } = await fileWriter(o.out!, o.kind === 'file' ? undefined : f.name, f.tensors, o.meta);
          writers.push(writer);
          targets.push({ tensors: order.map((t) => byName.get(t.name)!), writer });
        }
        const base = { ...done };
        await streams.stream(targets, {
          allowNonfinite: opts.allowNonfinite ?? false,
          onProgress: (p) => {
            done.bytesRead = base.bytesRead + p.bytesRead;
            done.tensorsDone = base.tensorsDone + p.tensorsDone;
            opts.onProgress?.(done, plans, bytesToRead);
          },
        });
        while (writers.length > 0) {
          await writers[0].close();
          writers.shift();
        }
      } finally {
        for (const w of writers) await w.discard();
      }
      outputs.forEach((o, m) => o.files.push(o.kind === 'file' ? o.output : file[m].name));
    }
    return streams.threads;
  } finally {
    await streams.close();
  }
}

export interface ManyOptions extends Omit<MergeOptions, 'output' | 'onProgress'> {
  /** Bytes read so far over all passes (each input chunk counted once, of `bytesToRead`), tensors done. */
  onProgress?: (p: StreamProgress, plans: readonly MergePlan[], bytesToRead: number) => void;
}

/** Bytes a pass reads: each source of each tensor once, however many outputs weigh it. */
function passBytes(pass: readonly PassOutput[]): number {
  const sources = new Set<TensorSource>();
  for (const o of pass)
    for (const f of o.plan.files) for (const t of f.tensors) for (const c of t.contributions) sources.add(c.source);
  return [...sources].reduce((a, s) => a + s.byteLength, 0);
}

/**
 * Averages `checkpoints` (oldest first) with each of `vectors` into `outputs[i]`, reading each
 * chunk of each checkpoint once for all of them: the accumulation and memory are those of one
 * merge per output (one accumulator chunk each), the reads those of one merge. A vector may
 * span a subset of the checkpoints (its steps). Each output is byte for byte what `merge`
 * writes for its vector alone; outputs whose file layouts differ (e.g. windows whose newest
 * checkpoints are sharded differently) are written in separate passes. Every output is
 * committed only once all are written; on a failure none is left.
 */
export async function mergeMany(
  checkpoints: readonly Checkpoint[],
  vectors: readonly WeightVector[],
  outputs: readonly string[],
  opts: ManyOptions = {},
): Promise<MergeResult[]> {
  if (vectors.length !== outputs.length || vectors.length === 0) {
    throw new AvgCkptError('internal', `mergeMany: ${vectors.length} weight vectors for ${outputs.length} outputs`);
  }
  const passOutputs: PassOutput[] = [];
  for (const [i, vector] of vectors.entries()) {
    const steps = new Set(vector.steps);
    const selected = checkpoints.filter((c) => steps.has(c.step));
    const kind = outputKindOf(outputs[i], await existsAsDir(outputs[i]));
    if (opts.shardSize !== undefined && kind === 'file') {
      throw new AvgCkptError(
        'usage',
        'a shard size applies to a folder output, and this is one file (end the name with / for a folder)',
        { file: outputs[i] },
      );
    }
    const plan = planMerge(selected, vector, { dtype: opts.dtype, shardSize: opts.shardSize, outputKind: kind });
    passOutputs.push({ plan, output: outputs[i], kind, meta: recipeMetadata(plan, plan.newest), files: [] });
  }
  await guardOutputs(
    outputs.map((path) => ({ path, role: 'output' })),
    [...checkpointInputs(checkpoints), ...(opts.inputs ?? [])],
  );
  const pool = new FilePool();
  const done: StreamProgress = { bytesRead: 0, tensorsDone: 0 };
  let threads = 1;
  try {
    for (const o of passOutputs) o.out = await beginOutput(o.output, o.kind, opts.force ?? false);
    const passes = new Map<string, PassOutput[]>();
    for (const o of passOutputs) passes.set(layoutKey(o), [...(passes.get(layoutKey(o)) ?? []), o]);
    const bytesToRead = [...passes.values()].reduce((a, pass) => a + passBytes(pass), 0);
    for (const pass of passes.values())
      threads = Math.max(threads, await writePass(pool, pass, opts, done, bytesToRead));
    for (const o of passOutputs) {
      if (o.kind === 'dir' && o.plan.sharded) {
        await writeIndex(o.plan, o.out!);
        o.files.push(INDEX_FILE);
      }
      if (o.kind === 'dir' && o.plan.newest.isFolder)
        o.files.push(...(await copyConfigFiles(o.plan.newest.dir, o.out!)));
    }
    for (const o of passOutputs) await o.out!.commit();
  } catch (e) {
    for (const o of passOutputs) await o.out?.abort();
    throw e;
  } finally {
    await pool.close();
  }
  return passOutputs.map((o) => ({ output: o.output, files: o.files, plan: o.plan, threads }));
}

/** Averages `checkpoints` (the selection, oldest first) with `vector` into `opts.output`. */
export async function mergeToOutput(
  checkpoints: readonly Checkpoint[],
  vector: WeightVector,
  opts: MergeOptions,
): Promise<MergeResult> {
  const { output, onProgress, ...rest } = opts;
  const [result] = await mergeMany(checkpoints, [vector], [output], {
    ...rest,
    onProgress: (p, plans) => onProgress?.(p, plans[0]),
  });
  return result;
}
