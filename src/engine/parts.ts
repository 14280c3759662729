/**
 * One merge split over N processes that share only the output location (a shared filesystem or
 * a bucket), as a Kubernetes Indexed Job or a Slurm array runs them: `--part I/N` computes only
 * part I's share of the output, and `--finalize` checks that every part finished for the same
 * recipe and inputs, assembles, and commits. The output equals one `merge` byte for byte.
 *
 * Shares are whole output files balanced by bytes; a file larger than a share (N parts of one
 * big model.safetensors, a huge embedding) is cut into byte ranges of its data, at tensor
 * boundaries and, inside a tensor larger than a share, at row boundaries. Those ranges are
 * written as pieces that finalize concatenates behind the file's header. Each part writes its
 * files, then its manifest (`.avg-ckpt-parts/part-I-of-N.json`) last; finalize writes the index,
 * the config files and the `_SUCCESS` marker last, then removes `.avg-ckpt-parts`.
 */
import { createHash } from 'node:crypto';
import { AvgCkptError } from '../errors.js';
import { elementBytes, numelOf, type TensorSource } from '../io/formats/tensor-source.js';
import { checkpointInputs, guardOutputs } from '../io/output-guard.js';
import { SAFETENSORS_INDEX_FILE as INDEX_FILE } from '../io/safetensors/format.js';
import {
  byteLengthOf,
  layoutSafetensors,
  SafetensorsWriter,
  type PlacedTensor,
  type SafetensorsLayout,
} from '../io/safetensors/writer.js';
import { FilePool } from '../io/storage/file-pool.js';
import { beginOutput, removeTree, SUCCESS_MARKER, writeWhole } from '../io/storage/output.js';
import { joinPath } from '../io/storage/paths.js';
import { kindOf, listDir, openReader, readWhole, statPath, storageError } from '../io/storage/storage.js';
import { copyConfigFiles } from './config-files.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import { defaultThreads } from './compute.js';
import { outputKindOf, recipeMetadata, writeIndex, type MergeOptions, type MergeResult } from './merge.js';
import { planMerge, type MergePlan, type PlannedTensor } from './plan.js';
import { MergeStreams, type StreamProgress } from './stream.js';

export interface PartSpec {
  readonly index: number;
  readonly count: number;
}

/** Where parts put their pieces and manifests, inside the output folder (hidden: never a checkpoint). */
export const PARTS_FOLDER = '.avg-ckpt-parts';

/**
 * `I/N`, or `auto/N` with I from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or
 * SLURM_ARRAY_TASK_ID (Slurm array, submitted with --array=0-(N-1)).
 */
export function parsePartSpec(spec: string, env: NodeJS.ProcessEnv = process.env, flag = '--part'): PartSpec {
  const m = /^(\d+|auto)\/(\d+)$/.exec(spec.trim());
  if (m === null || Number(m[2]) < 1)
    throw new AvgCkptError('usage', `${flag} ${spec}: expected I/N (e.g. 0/8, I from 0 to N-1) or auto/N`);
  const count = Number(m[2]);
  let index = Number(m[1]);
  let from = '';
  if (m[1] === 'auto') {
    const name =
      env.JOB_COMPLETION_INDEX !== undefined
        ? 'JOB_COMPLETION_INDEX'
        : env.SLURM_ARRAY_TASK_ID !== undefined
          ? 'SLURM_ARRAY_TASK_ID'
          : undefined;
    if (name === undefined) {
      throw new AvgCkptError(
        'usage',
        `${flag} auto/${count}: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm array) is set; pass --part I/${count}`,
      );
    }
    from = ` (${name}=${env[name]})`;
    index = /^\d+$/.test(env[name] ?? '') ? Number(env[name]) : Number.NaN;
  }
  if (!Number.isSafeInteger(index) || index >= count) {
    throw new AvgCkptError('usage', `${flag} ${spec}${from}: the part index must be 0 to ${count - 1}`);
  }
  return { index, count };
}

/** A contiguous byte range of one output file: the whole file, or a piece of its data. */
export interface Unit {
  readonly file: string;
  readonly whole: boolean;
  /** Bytes of the file's data section (after the header). */
  readonly begin: number;
  readonly end: number;
  /** Tensors, or row slices of one, in file order. */
  readonly tensors: readonly PlannedTensor[];
}

interface FileLayout {
  readonly name: string;
  readonly layout: SafetensorsLayout;
  readonly byName: ReadonlyMap<string, PlannedTensor>;
}

function layoutsOf(plan: MergePlan, meta: Record<string, string>): FileLayout[] {
  return plan.files.map((f) => ({
    name: f.name,
    layout: layoutSafetensors(f.tensors, meta),
    byName: new Map(f.tensors.map((t) => [t.name, t])),
  }));
}

/** Rows [r0, r1) of a source: element 0 moves by r0 rows (or r0 strides of the first axis). */
function sliceSource(src: TensorSource, r0: number, r1: number): TensorSource {
  const row = numelOf(src.shape.slice(1));
  const step = src.strides?.[0] ?? row;
  return {
    ...src,
    shape: [r1 - r0, ...src.shape.slice(1)],
    position: src.position + r0 * step * elementBytes(src),
    byteLength: (r1 - r0) * row * elementBytes(src),
  };
}

function sliceTensor(t: PlannedTensor, r0: number, r1: number): PlannedTensor {
  return {
    ...t,
    shape: [r1 - r0, ...t.shape.slice(1)],
    contributions: t.contributions.map((c) => ({ weight: c.weight, source: sliceSource(c.source, r0, r1) })),
  };
}

/** Cuts a file into units of at most about `share` bytes (a tensor of one row stays whole). */
function unitsOf(f: FileLayout, share: number): Unit[] {
  const data = f.layout.fileSize - f.layout.headerBytes.byteLength;
  if (data <= share)
    return [
      { file: f.name, whole: true, begin: 0, end: data, tensors: f.layout.tensors.map((p) => f.byName.get(p.name)!) },
    ];
  const units: Unit[] = [];
  let current: PlacedTensor[] = [];
  const flush = () => {
    if (current.length === 0) return;
    units.push({
      file: f.name,
      whole: false,
      begin: current[0].begin,
      end: current[current.length - 1].end,
      tensors: current.map((p) => f.byName.get(p.name)!),
    });
    current = [];
  };
  for (const p of f.layout.tensors) {
    const bytes = p.end - p.begin;
    const rows = p.shape[0] ?? 1;
    if (bytes > share && p.shape.length > 0 && rows > 1) {
      flush();
      const k = Math.min(rows, Math.ceil(bytes / share));
      const per = Math.ceil(rows / k);
      const rowBytes = bytes / rows;
      for (let r0 = 0; r0 < rows; r0 += per) {
        const r1 = Math.min(rows, r0 + per);
        units.push({
          file: f.name,
          whole: false,
          begin: p.begin + r0 * rowBytes,
          end: p.begin + r1 * rowBytes,
          tensors: [sliceTensor(f.byName.get(p.name)!, r0, r1)],
        });
      }
      continue;
    }
    if (current.length > 0 && p.end - current[0].begin > share) flush();
    current.push(p);
  }
  flush();
  return units;
}

/** Every unit of the output and the part that computes it: largest first to the least loaded part. */
export function assignUnits(
  plan: MergePlan,
  meta: Record<string, string>,
  count: number,
): { layouts: FileLayout[]; parts: Unit[][] } {
  const layouts = layoutsOf(plan, meta);
  const total = layouts.reduce((a, f) => a + f.layout.fileSize - f.layout.headerBytes.byteLength, 0);
  const share = Math.max(1, Math.ceil(total / count));
  const units = layouts.flatMap((f) => unitsOf(f, share));
  const order = units
    .map((_, i) => i)
    .sort((a, b) => units[b].end - units[b].begin - (units[a].end - units[a].begin) || a - b);
  const loads = new Array<number>(count).fill(0);
  const parts: Unit[][] = Array.from({ length: count }, () => []);
  for (const i of order) {
    const p = loads.indexOf(Math.min(...loads));
    parts[p].push(units[i]);
    loads[p] += units[i].end - units[i].begin;
  }
  for (const p of parts) p.sort((a, b) => units.indexOf(a) - units.indexOf(b));
  return { layouts, parts };
}

function pieceName(u: Unit): string {
  return `${PARTS_FOLDER}/${u.file}.${u.begin}-${u.end}.piece`;
}

/** What a unit leaves in the output folder: the file itself, or its piece. */
function unitFile(u: Unit, layouts: readonly FileLayout[]): { name: string; size: number } {
  if (!u.whole) return { name: pieceName(u), size: u.end - u.begin };
  return { name: u.file, size: layouts.find((f) => f.name === u.file)!.layout.fileSize };
}

interface Manifest {
  part: number;
  count: number;
  /** The output's layout: names, dtypes, shapes, shards and the recipe in their metadata. */
  recipe: string;
  /** The inputs: which checkpoint files, their sizes and versions, where each tensor is in them. */
  inputs: string;
  files: { name: string; size: number }[];
}

const sha = (text: string | Uint8Array) => createHash('sha256').update(text).digest('hex');

async function fingerprints(
  plan: MergePlan,
  layouts: readonly FileLayout[],
  count: number,
): Promise<{ recipe: string; inputs: string }> {
  const recipe = sha(JSON.stringify([count, layouts.map((f) => [f.name, sha(f.layout.headerBytes)])]));
  const files = [...new Set(plan.contributing.flatMap((ck) => ck.files))];
  // size and version (modification time, ETag): a checkpoint rewritten between two parts makes them stale
  const versions = await Promise.all(
    files.map((f) =>
      statPath(f).then(
        (i) => [i.size, i.version ?? null],
        (e: unknown) => {
          throw storageError(f, e, 'look up');
        },
      ),
    ),
  );
  const sources = plan.files.flatMap((f) =>
    f.tensors.map((t) => [
      t.name,
      t.contributions.map((c) => [c.source.file, c.source.position, c.source.byteLength, c.weight]),
    ]),
  );
  return { recipe, inputs: sha(JSON.stringify([files, versions, sources])) };
}

function manifestName(index: number, count: number): string {
  return `${PARTS_FOLDER}/part-${index}-of-${count}.json`;
}

/** Refuses to start over a finished output unless `force`; with it, the output stops looking finished first. */
async function checkNotFinished(output: string, force: boolean): Promise<void> {
  const marker = joinPath(output, SUCCESS_MARKER);
  if ((await kindOf(marker)) === undefined) return;
  if (!force)
    throw new AvgCkptError(
      'output-exists',
      `already holds a finished merge (${SUCCESS_MARKER}); pass --force to replace it`,
      { file: output },
    );
  await removeTree(marker);
}

function requireFolder(plan: MergePlan, output: string, kind: 'file' | 'dir'): void {
  if (kind !== 'dir')
    throw new AvgCkptError(
      'usage',
      '--part and --finalize write a folder: end the output with / (a single .safetensors cannot be split)',
      { file: output },
    );
  if (plan.files.length === 0) throw new AvgCkptError('internal', 'a merge plan with no files', { file: output });
}

/** Part `spec.index` of `spec.count`: its files, then its manifest last. */
export async function mergePart(
  plan: MergePlan,
  kind: 'file' | 'dir',
  spec: PartSpec,
  opts: MergeOptions,
): Promise<MergeResult> {
  requireFolder(plan, opts.output, kind);
  await checkNotFinished(opts.output, opts.force ?? false);
  const meta = recipeMetadata(plan, plan.newest);
  const { layouts, parts } = assignUnits(plan, meta, spec.count);
  const mine = parts[spec.index];
  const pool = new FilePool();
  const files: string[] = [];
  const done: StreamProgress = { bytesRead: 0, tensorsDone: 0 };
  const streams = MergeStreams.open(
    pool,
    mine.map((u) => [u.tensors]),
    opts.threads ?? defaultThreads(),
  );
  try {
    for (const u of mine) {
      const f = unitFile(u, layouts);
      const fl = layouts.find((l) => l.name === u.file)!;
      const layout: SafetensorsLayout = u.whole
        ? fl.layout
        : { headerBytes: new Uint8Array(0), tensors: placed(u), fileSize: f.size };
      // each file atomically: a part that is retried (a pod restarted) replaces its own files
      const out = await beginOutput(joinPath(opts.output, f.name), 'file', true);
      try {
        const writer = await SafetensorsWriter.into(
          await out.create(undefined, layout.fileSize),
          layout,
          out.shownAs(),
        );
        const byName = new Map(u.tensors.map((t) => [t.name, t]));
        const base = { ...done };
        try {
          await streams.stream([{ tensors: layout.tensors.map((p) => byName.get(p.name)!), writer }], {
            allowNonfinite: opts.allowNonfinite ?? false,
            onProgress: (p) => {
              done.bytesRead = base.bytesRead + p.bytesRead;
              done.tensorsDone = base.tensorsDone + p.tensorsDone;
              opts.onProgress?.(done, plan);
            },
          });
          await writer.close();
        } catch (e) {
          await writer.discard();
          throw e;
        }
        await out.commit();
      } catch (e) {
        await out.abort();
        throw e;
      }
      files.push(f.name);
    }
  } finally {
    await streams.close();
    await pool.close();
  }
  const manifest: Manifest = {
    part: spec.index,
    count: spec.count,
    ...(await fingerprints(plan, layouts, spec.count)),
    files: mine.map((u) => unitFile(u, layouts)),
  };
  await writeWhole(
    joinPath(opts.output, manifestName(spec.index, spec.count)),
    new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`),
  );
  return { output: opts.output, files, plan, threads: streams.threads };
}

/** A piece's tensors placed from 0 (a piece has no header). */
function placed(u: Unit): PlacedTensor[] {
  let at = 0;
  return u.tensors.map((t) => {
    const p = { name: t.name, dtype: t.dtype, shape: t.shape, begin: at, end: at + byteLengthOf(t) };
    at = p.end;
    return p;
  });
}

/** The parts whose manifests are there: part index -> the N it was made for. */
async function finishedParts(output: string): Promise<{ name: string; index: number; count: number }[]> {
  let names: string[];
  try {
    names = (await listDir(joinPath(output, PARTS_FOLDER))).map((e) => e.name);
  } catch {
    names = [];
  }
  return names.flatMap((name) => {
    const m = /^part-(\d+)-of-(\d+)\.json$/.exec(name);
    return m === null ? [] : [{ name, index: Number(m[1]), count: Number(m[2]) }];
  });
}

/** Why part `i` cannot be used, or undefined when its manifest and files are what this plan expects. */
async function partProblem(
  output: string,
  i: number,
  count: number,
  expected: { recipe: string; inputs: string },
  units: readonly Unit[],
  layouts: readonly FileLayout[],
): Promise<string | undefined> {
  let m: Manifest;
  try {
    m = JSON.parse(new TextDecoder().decode(await readWhole(joinPath(output, manifestName(i, count))))) as Manifest;
  } catch {
    return 'its manifest is unreadable';
  }
  if (m.recipe !== expected.recipe) return 'made for another recipe or output layout';
  if (m.inputs !== expected.inputs) return 'made from other inputs';
  const files = units.map((u) => unitFile(u, layouts));
  if (JSON.stringify(m.files) !== JSON.stringify(files)) return 'made for another split of the output';
  for (const [k, f] of files.entries()) {
    const size = await statPath(joinPath(output, f.name)).then(
      (st) => st.size,
      () => undefined,
    );
    if (size !== f.size)
      return `its file ${f.name} is ${size === undefined ? 'missing' : `${size} bytes, not ${f.size}`}`;
    const u = units[k];
    if (u.whole) {
      // the header says names, dtypes, shapes and the recipe: it must be exactly this plan's
      const want = layouts.find((l) => l.name === u.file)!.layout.headerBytes;
      const reader = await openReader(joinPath(output, f.name));
      const got = new Uint8Array(want.byteLength);
      try {
        await reader.read(0, got);
      } finally {
        await reader.close();
      }
      if (Buffer.compare(got, want) !== 0) return `its file ${f.name} has another header`;
    }
  }
  return undefined;
}

/** Checks that every part finished for this plan; names the missing and stale ones in one line. */
async function checkParts(
  output: string,
  plan: MergePlan,
  meta: Record<string, string>,
): Promise<{ layouts: FileLayout[]; parts: Unit[][] }> {
  const found = await finishedParts(output);
  if (found.length === 0) {
    throw new AvgCkptError(
      'missing-part',
      `holds no finished part (no ${PARTS_FOLDER}/part-I-of-N.json): run the same merge with --part I/N first`,
      { file: output },
    );
  }
  const counts = [...new Set(found.map((f) => f.count))];
  if (counts.length > 1) {
    throw new AvgCkptError(
      'stale-part',
      `holds parts made for different numbers of parts (${found.map((f) => f.name).join(', ')}): remove ${PARTS_FOLDER} and run the parts again`,
      { file: output },
    );
  }
  const count = counts[0];
  const { layouts, parts } = assignUnits(plan, meta, count);
  const expected = await fingerprints(plan, layouts, count);
  const missing: number[] = [];
  const stale: string[] = [];
  for (let i = 0; i < count; i++) {
    if (!found.some((f) => f.index === i)) {
      missing.push(i);
      continue;
    }
    const why = await partProblem(output, i, count, expected, parts[i], layouts);
    if (why !== undefined) stale.push(`part ${i} (${why})`);
  }
  const problems = [
    ...(missing.length > 0
      ? [
          `part${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${count} ${missing.length > 1 ? 'have' : 'has'} not finished`,
        ]
      : []),
    ...(stale.length > 0 ? [`stale: ${stale.join(', ')}`] : []),
  ];
  if (problems.length > 0) {
    throw new AvgCkptError(
      missing.length > 0 ? 'missing-part' : 'stale-part',
      `${problems.join('; ')}: run those parts again (--part I/${count}), then --finalize`,
      { file: output },
    );
  }
  return { layouts, parts };
}

/** Writes a file cut into pieces: its header, then each piece's bytes, streamed in bounded chunks. */
async function assemble(output: string, f: FileLayout, pieces: readonly Unit[]): Promise<void> {
  const out = await beginOutput(joinPath(output, f.name), 'file', true);
  const buf = new Uint8Array(8 << 20);
  try {
    const sink = await out.create(undefined, f.layout.fileSize);
    await sink.write(f.layout.headerBytes);
    for (const u of pieces) {
      const path = joinPath(output, pieceName(u));
      const reader = await openReader(path).catch((e: unknown) => {
        throw storageError(path, e, 'open for reading');
      });
      try {
        for (let at = 0; at < reader.size; at += buf.byteLength) {
          const n = Math.min(buf.byteLength, reader.size - at);
          await reader.read(at, buf, n);
          await sink.write(buf.subarray(0, n));
        }
      } catch (e) {
        throw storageError(path, e, 'read');
      } finally {
        await reader.close();
      }
    }
    await sink.close();
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  }
}

/** Checks every part, assembles the files cut into pieces, then index, config files and the marker last. */
export async function finalizeParts(plan: MergePlan, kind: 'file' | 'dir', opts: MergeOptions): Promise<MergeResult> {
  requireFolder(plan, opts.output, kind);
  await checkNotFinished(opts.output, opts.force ?? false);
  const meta = recipeMetadata(plan, plan.newest);
  const { layouts, parts } = await checkParts(opts.output, plan, meta);
  const units = parts.flat();
  for (const f of layouts) {
    const pieces = units.filter((u) => u.file === f.name && !u.whole).sort((a, b) => a.begin - b.begin);
    if (pieces.length > 0) await assemble(opts.output, f, pieces);
  }
  const files = plan.files.map((f) => f.name);
  // each file into the existing folder, atomically (there is no temporary folder to commit)
  const into = { put: (name: string, bytes: Uint8Array) => writeWhole(joinPath(opts.output, name), bytes) };
  if (plan.sharded) {
    await writeIndex(plan, into);
    files.push(INDEX_FILE);
  }
  if (plan.newest.isFolder) files.push(...(await copyConfigFiles(plan.newest.dir, into)));
  await writeWhole(joinPath(opts.output, SUCCESS_MARKER), new Uint8Array(0));
  await removeTree(joinPath(opts.output, PARTS_FOLDER));
  return { output: opts.output, files, plan, threads: 1 };
}

export interface PartOptions extends MergeOptions {
  /** This process's share. */
  part?: PartSpec;
  /** Check every part and commit instead. */
  finalize?: boolean;
}

/** `merge --part I/N` or `merge --finalize`: the plan of one merge, split. */
export async function mergeInParts(
  checkpoints: readonly Checkpoint[],
  vector: WeightVector,
  opts: PartOptions,
): Promise<MergeResult> {
  const kind = outputKindOf(opts.output, (await kindOf(opts.output)) === 'dir');
  const plan = planMerge(checkpoints, vector, { dtype: opts.dtype, shardSize: opts.shardSize, outputKind: kind });
  await guardOutputs(
    [{ path: opts.output, role: 'output' }],
    [...checkpointInputs(checkpoints), ...(opts.inputs ?? [])],
  );
  if (opts.finalize === true) return finalizeParts(plan, kind, opts);
  if (opts.part === undefined) throw new AvgCkptError('internal', 'mergeInParts needs --part or --finalize');
  return mergePart(plan, kind, opts.part, opts);
}
