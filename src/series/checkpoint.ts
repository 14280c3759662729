/**
 * One checkpoint of a series: a single file in any format the registry reads, a folder with
 * one, or a folder of shards described by an index (the index is trusted, not a glob).
 */
import { basename, dirname } from 'node:path';
import { AvgCkptError } from '../errors.js';
import type { FormatFile, OpenOptions } from '../io/formats/format.js';
import {
  INDEX_FILE_NAMES,
  SINGLE_FILE_NAMES,
  holdsCheckpoint,
  isCandidateName,
  openCheckpointFile,
} from '../io/formats/registry.js';
import type { TensorSource } from '../io/formats/tensor-source.js';
import { joinPath } from '../io/storage/paths.js';
import { listDir, statPath, storageError } from '../io/storage/storage.js';
import { readShardIndex } from './shard-index.js';
import { resolveStep } from './step.js';

export type { TensorSource } from '../io/formats/tensor-source.js';

export type StepSource = 'name' | 'metadata' | 'trainer_state' | 'order';

/** 'named' by the user, or 'listed': found inside a run folder or by a glob. */
export type FoundHow = 'named' | 'listed';

/** A checkpoint's files and tensors, validated, before its place in a series is known. */
export interface CheckpointFiles {
  /** The file or folder as found (what messages show). */
  readonly path: string;
  /** The folder whose config and tokenizer files belong with this checkpoint. */
  readonly dir: string;
  readonly isFolder: boolean;
  /** How it was found: a listed checkpoint's own name may carry its step; a named folder is the run. */
  readonly how: FoundHow;
  /** The format of its files (of the first, for a sharded checkpoint). */
  readonly format: string;
  /** Tensor files, in index (or single-file) order. */
  readonly files: readonly string[];
  readonly index?: string;
  /** Tensors by name, in the order the files list them. */
  readonly tensors: ReadonlyMap<string, TensorSource>;
  /** Metadata of the first file. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Total bytes of tensor data. */
  readonly bytes: number;
}

export interface Checkpoint extends CheckpointFiles {
  readonly step: number;
  readonly stepSource: StepSource;
}

/** True when a folder holds a checkpoint itself (rather than being a run of checkpoints). */
export async function isCheckpointFolder(dir: string): Promise<boolean> {
  try {
    return holdsCheckpoint((await listDir(dir)).map((e) => e.name));
  } catch {
    return false;
  }
}

/**
 * Loads one checkpoint on its own: its step from its name, metadata or trainer_state.json,
 * else 1 (as the only checkpoint of a series whose steps are unknown).
 */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const files = await readCheckpointFiles(path);
  const step = await resolveStep(files);
  return { ...files, step: step?.step ?? 1, stepSource: step?.source ?? 'order' };
}

/** Opens and validates the files of the checkpoint at `path` (a file or a folder). */
export async function readCheckpointFiles(
  path: string,
  options: OpenOptions = {},
  how: FoundHow = 'named',
): Promise<CheckpointFiles> {
  let isFolder: boolean;
  try {
    isFolder = (await statPath(path)).kind === 'dir';
  } catch (e) {
    throw storageError(path, e, 'open the checkpoint');
  }
  if (!isFolder)
    return fromFiles({ path, dir: dirname(path), isFolder: false, how }, [await openCheckpointFile(path, options)]);

  let names: string[];
  try {
    names = (await listDir(path)).map((e) => e.name).sort();
  } catch (e) {
    throw storageError(path, e, 'list the checkpoint folder'); // e.g. deleted by checkpoint rotation
  }
  const index = INDEX_FILE_NAMES.find((n) => names.includes(n));
  if (index !== undefined) return fromIndex({ path, dir: path, isFolder: true, how }, joinPath(path, index), options);
  const single = SINGLE_FILE_NAMES.find((n) => names.includes(n));
  const candidates = single !== undefined ? [single] : names.filter(isCandidateName);
  if (candidates.length === 1)
    return fromFiles({ path, dir: path, isFolder: true, how }, [
      await openCheckpointFile(joinPath(path, candidates[0]), options),
    ]);
  if (candidates.length === 0) {
    throw new AvgCkptError('no-checkpoints', 'folder holds no checkpoint file (e.g. model.safetensors)', {
      file: path,
    });
  }
  throw new AvgCkptError(
    'invalid-index',
    `folder holds ${candidates.length} checkpoint files (${candidates.join(', ')}) but no index (${INDEX_FILE_NAMES.join(' or ')}) saying how they fit together`,
    { file: path },
  );
}

/** Where a checkpoint is and how it was found. */
type Place = Pick<CheckpointFiles, 'path' | 'dir' | 'isFolder' | 'how'>;

function fromFiles(
  place: Place,
  files: readonly FormatFile[],
  index?: string,
  placement?: ReadonlyMap<string, string>,
): CheckpointFiles {
  const { path } = place;
  const tensors = new Map<string, TensorSource>();
  const owner = new Map<string, string>();
  let bytes = 0;
  for (const f of files) {
    for (const t of f.tensors) {
      const prev = owner.get(t.name);
      if (prev !== undefined) {
        throw new AvgCkptError('tensor-in-two-shards', `is stored in both ${basename(prev)} and ${basename(f.path)}`, {
          file: index ?? path,
          tensor: t.name,
        });
      }
      owner.set(t.name, f.path);
      if (placement !== undefined && placement.get(t.name) !== f.path) continue; // shard holds a tensor the index does not list
      tensors.set(t.name, t);
      bytes += t.byteLength;
    }
  }
  if (placement !== undefined) {
    for (const [name, file] of placement) {
      if (!tensors.has(name)) {
        throw new AvgCkptError(
          'tensor-missing-from-shard',
          `is listed in ${basename(index ?? '')} but absent from ${basename(file)}`,
          { file, tensor: name },
        );
      }
    }
  }
  return {
    ...place,
    format: files[0].format,
    files: files.map((f) => f.path),
    index,
    tensors,
    metadata: files[0].metadata,
    bytes,
  };
}

async function fromIndex(place: Place, indexPath: string, options: OpenOptions): Promise<CheckpointFiles> {
  const index = await readShardIndex(place.dir, indexPath);
  const files: FormatFile[] = [];
  for (const shard of index.shards) {
    try {
      await statPath(shard);
    } catch {
      throw new AvgCkptError('missing-shard', `names shard ${basename(shard)}, which does not exist`, {
        file: indexPath,
        tensor: [...index.placement].find(([, f]) => f === shard)?.[0],
      });
    }
    files.push(await openCheckpointFile(shard, options));
  }
  return fromFiles(place, files, indexPath, index.placement);
}
