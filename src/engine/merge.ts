/**
 * `merge`: materialise one weight vector over a checkpoint series into a checkpoint that loads
 * anywhere (same layout and dtype, config files copied), written atomically.
 */
import { sep } from 'node:path';
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
import { planMerge, type MergePlan, type PlannedTensor } from './plan.js';
import { streamTensors, type StreamProgress } from './stream.js';

export interface MergeOptions {
  /** A `.safetensors` or `.pt` file, or a folder (written like the input: shards + index, config files). */
  output: string;
  force?: boolean;
  /** Output dtype for float tensors (default: the input's). */
  dtype?: WritableFloat;
  /** Folder output: shard at this many bytes. */
  shardSize?: number;
  allowNonfinite?: boolean;
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
}

/** File outputs in PyTorch's format (`torch.save` zip); every other file output is safetensors. */
const PT_OUTPUT = /\.(pt|pth|bin)$/i;

/** A folder output is asked for by a trailing slash, an existing folder, or no .safetensors/.pt suffix. */
export function outputKindOf(output: string, existingIsDir: boolean): 'file' | 'dir' {
  if (output.endsWith('/') || output.endsWith(sep) || existingIsDir) return 'dir';
  return output.endsWith('.safetensors') || PT_OUTPUT.test(output) ? 'file' : 'dir';
}

/** The recipe, recorded in every output file's `__metadata__`. */
function recipeMetadata(plan: MergePlan, newest: Checkpoint): Record<string, string> {
  const v = plan.vector;
  const meta: Record<string, string> = {};
  if (newest.metadata.format !== undefined) meta.format = newest.metadata.format;
  meta.avg_ckpt = JSON.stringify({ version: VERSION, method: v.method, name: v.name, params: v.params, steps: v.steps, weights: v.weights });
  return meta;
}

/** stat, not open: opening an existing FIFO at the output path would block forever. */
async function existsAsDir(p: string): Promise<boolean> {
  return (await kindOf(p)) === 'dir';
}

/** A `.pt` output: tied input names share one storage again, their bytes computed once. */
async function ptWriter(sink: ByteSink, shownAs: string, tensors: PlannedTensor[], meta: Record<string, string>): Promise<{ writer: PtWriter; order: readonly OutputTensor[] }> {
  const aliases = tiedNames(tensors.map((t) => ({ name: t.name, dtype: t.dtype, sources: t.contributions.map((c) => c.source) })));
  const layout = layoutPt(tensors, meta, aliases);
  return { writer: await PtWriter.into(sink, layout, shownAs), order: layout.tensors };
}

/** Writes `tensors` as file `name` of `out` (the output itself for a file output). */
async function writeFilePlan(pool: FilePool, out: Output, name: string | undefined, tensors: PlannedTensor[], meta: Record<string, string>, opts: MergeOptions, plan: MergePlan, base: StreamProgress): Promise<void> {
  const shownAs = out.shownAs(name);
  const order = new Map(tensors.map((t) => [t.name, t]));
  let writer: SafetensorsWriter | PtWriter;
  let written: readonly OutputTensor[];
  if (PT_OUTPUT.test(shownAs)) ({ writer, order: written } = await ptWriter(await out.create(name), shownAs, tensors, meta));
  else {
    const layout = layoutSafetensors(tensors, meta);
    writer = await SafetensorsWriter.into(await out.create(name, layout.fileSize), layout, shownAs);
    written = layout.tensors;
  }
  try {
    await streamTensors(pool, written.map((t) => order.get(t.name)!), writer, {
      allowNonfinite: opts.allowNonfinite ?? false,
      onProgress: (p) => opts.onProgress?.({ bytesRead: base.bytesRead + p.bytesRead, tensorsDone: base.tensorsDone + p.tensorsDone }, plan),
    });
    await writer.close();
  } catch (e) {
    await writer.discard();
    throw e;
  }
  base.bytesRead += tensors.reduce((a, t) => a + t.contributions.reduce((b, c) => b + c.source.byteLength, 0), 0);
  base.tensorsDone += tensors.length;
}

/** Averages `checkpoints` (the selection, oldest first) with `vector` into `opts.output`. */
export async function mergeToOutput(checkpoints: readonly Checkpoint[], vector: WeightVector, opts: MergeOptions): Promise<MergeResult> {
  const kind = outputKindOf(opts.output, await existsAsDir(opts.output));
  const plan = planMerge(checkpoints, vector, { dtype: opts.dtype, shardSize: opts.shardSize, outputKind: kind });
  await guardOutputs([{ path: opts.output, role: 'output' }], [...checkpointInputs(checkpoints), ...(opts.inputs ?? [])]);
  const meta = recipeMetadata(plan, plan.newest);
  const out = await beginOutput(opts.output, kind, opts.force ?? false);
  const pool = new FilePool();
  const files: string[] = [];
  const done: StreamProgress = { bytesRead: 0, tensorsDone: 0 };
  try {
    if (kind === 'file') {
      await writeFilePlan(pool, out, undefined, plan.files[0].tensors, meta, opts, plan, done);
      files.push(opts.output);
    } else {
      for (const f of plan.files) {
        await writeFilePlan(pool, out, f.name, f.tensors, meta, opts, plan, done);
        files.push(f.name);
      }
      if (plan.sharded) {
        const weightMap: Record<string, string> = {};
        for (const f of plan.files) for (const t of f.tensors) weightMap[t.name] = f.name;
        const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)));
        const index = { metadata: { total_size: plan.files.reduce((a, f) => a + f.tensors.reduce((b, t) => b + byteLengthOf(t), 0), 0) }, weight_map: sorted };
        await out.put(INDEX_FILE, new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`));
        files.push(INDEX_FILE);
      }
      if (plan.newest.isFolder) files.push(...(await copyConfigFiles(plan.newest.dir, out)));
    }
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  } finally {
    await pool.close();
  }
  return { output: opts.output, files, plan };
}
