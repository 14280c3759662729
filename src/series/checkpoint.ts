/**
 * One checkpoint of a series: a single safetensors file, a folder with one, or a folder of
 * shards described by `model.safetensors.index.json` (the index is trusted, not a glob).
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute, sep } from 'node:path';
import { AvgCkptError, ioError } from '../errors.js';
import type { DType } from '../io/safetensors/dtype.js';
import { readRegularFile } from '../io/regular-file.js';
import { readSafetensorsHeader, type SafetensorsFile } from '../io/safetensors/reader.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
const SHARD_NAME = /^model-\d+-of-\d+\.safetensors$/;

/** Where one tensor's bytes are. */
export interface TensorSource {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly file: string;
  /** Absolute position of the first byte in `file`. */
  readonly position: number;
  readonly byteLength: number;
}

export type StepSource = 'name' | 'metadata' | 'trainer_state' | 'order';

export interface Checkpoint {
  step: number;
  stepSource: StepSource;
  /** The file or folder as found (what messages show). */
  readonly path: string;
  /** The folder whose config and tokenizer files belong with this checkpoint. */
  readonly dir: string;
  readonly isFolder: boolean;
  /** safetensors files, in index (or single-file) order. */
  readonly files: readonly string[];
  readonly index?: string;
  /** Tensors by name, in the order the files list them. */
  readonly tensors: ReadonlyMap<string, TensorSource>;
  /** `__metadata__` of the first file. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Total bytes of tensor data. */
  readonly bytes: number;
}

/** True when a folder holds a checkpoint itself (rather than being a run of checkpoints). */
export async function isCheckpointFolder(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return false;
  }
  return names.includes(INDEX_FILE) || names.includes(SINGLE_FILE) || names.some((n) => SHARD_NAME.test(n));
}

/** Loads and validates the headers of a checkpoint at `path` (a file or a folder). */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let isFolder: boolean;
  try {
    isFolder = (await stat(path)).isDirectory();
  } catch (e) {
    throw ioError(path, e, 'open the checkpoint');
  }
  if (!isFolder) return fromFiles(path, dirname(path), false, [await readSafetensorsHeader(path)], undefined);

  let names: string[];
  try {
    names = (await readdir(path)).sort();
  } catch (e) {
    throw ioError(path, e, 'list the checkpoint folder'); // e.g. deleted by checkpoint rotation
  }
  if (names.includes(INDEX_FILE)) return fromIndex(path, join(path, INDEX_FILE));
  if (names.includes(SINGLE_FILE)) return fromFiles(path, path, true, [await readSafetensorsHeader(join(path, SINGLE_FILE))], undefined);
  const st = names.filter((n) => n.endsWith('.safetensors') && !n.startsWith('.'));
  if (st.length === 1) return fromFiles(path, path, true, [await readSafetensorsHeader(join(path, st[0]))], undefined);
  if (st.length === 0) {
    throw new AvgCkptError('no-checkpoints', 'folder holds no .safetensors file', { file: path });
  }
  throw new AvgCkptError('invalid-index', `folder holds ${st.length} .safetensors files but no ${INDEX_FILE} saying how they fit together`, { file: path });
}

function fromFiles(path: string, dir: string, isFolder: boolean, files: SafetensorsFile[], index: string | undefined, only?: Map<string, string>): Checkpoint {
  const tensors = new Map<string, TensorSource>();
  const owner = new Map<string, string>();
  let bytes = 0;
  for (const f of files) {
    for (const t of f.header.tensors) {
      const prev = owner.get(t.name);
      if (prev !== undefined) {
        throw new AvgCkptError('tensor-in-two-shards', `is stored in both ${basename(prev)} and ${basename(f.path)}`, { file: index ?? path, tensor: t.name });
      }
      owner.set(t.name, f.path);
      if (only !== undefined && only.get(t.name) !== f.path) continue; // shard holds a tensor the index does not list
      tensors.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, file: f.path, position: f.position(t), byteLength: t.end - t.begin });
      bytes += t.end - t.begin;
    }
  }
  if (only !== undefined) {
    for (const [name, file] of only) {
      if (!tensors.has(name)) {
        throw new AvgCkptError('tensor-missing-from-shard', `is listed in ${INDEX_FILE} but absent from ${basename(file)}`, { file, tensor: name });
      }
    }
  }
  return { step: NaN, stepSource: 'order', path, dir, isFolder, files: files.map((f) => f.path), index, tensors, metadata: files[0]?.header.metadata ?? {}, bytes };
}

async function fromIndex(dir: string, indexPath: string): Promise<Checkpoint> {
  let raw: unknown;
  try {
    raw = JSON.parse((await readRegularFile(indexPath)).toString('utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) throw new AvgCkptError('invalid-index', `not valid JSON (${e.message})`, { file: indexPath });
    throw ioError(indexPath, e, 'read');
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new AvgCkptError('invalid-index', 'has no "weight_map" object', { file: indexPath });
  }
  const wanted = new Map<string, string>();
  const shardOrder: string[] = [];
  const root = resolve(dir);
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') {
      throw new AvgCkptError('invalid-index', 'weight_map entry is not a file name', { file: indexPath, tensor });
    }
    const full = resolve(root, shard);
    const rel = relative(root, full);
    if (isAbsolute(shard) || rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..')) {
      throw new AvgCkptError('shard-path-escapes', `weight_map names "${shard}", which is outside the checkpoint folder`, { file: indexPath, tensor });
    }
    const shardPath = join(dir, rel);
    if (!shardOrder.includes(shardPath)) shardOrder.push(shardPath);
    wanted.set(tensor, shardPath);
  }
  if (shardOrder.length === 0) throw new AvgCkptError('invalid-index', 'weight_map is empty', { file: indexPath });
  const files: SafetensorsFile[] = [];
  for (const shard of shardOrder) {
    try {
      await stat(shard);
    } catch {
      throw new AvgCkptError('missing-shard', `names shard ${basename(shard)}, which does not exist`, { file: indexPath, tensor: [...wanted].find(([, f]) => f === shard)?.[0] });
    }
    files.push(await readSafetensorsHeader(shard));
  }
  return fromFiles(dir, dir, true, files, indexPath, wanted);
}
