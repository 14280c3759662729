/**
 * The checkpoint formats avg-ckpt reads, in detection order, and what their file names say.
 * Adding a format: its folder under io/, and one line in FORMATS.
 */
import { basename } from 'node:path';
import { AvgCkptError } from '../../errors.js';
import { pytorchFormat } from '../pytorch/format.js';
import { safetensorsFormat } from '../safetensors/format.js';
import { openReader, storageError } from '../storage/storage.js';
import { HEAD_BYTES, type CheckpointFormat, type FormatFile, type OpenOptions } from './format.js';

export const FORMATS: readonly CheckpointFormat[] = [safetensorsFormat, pytorchFormat];

const lower = (name: string) => name.toLowerCase();

function claimsByName(f: CheckpointFormat, name: string): boolean {
  const n = lower(name);
  return f.names.extensions.some((e) => n.endsWith(e)) || (f.names.alsoCandidates ?? []).some((re) => re.test(name));
}

/**
 * True when a file of this name may be a checkpoint (a run folder's entries are filtered by
 * it): a format claims the name and none says it is never a checkpoint. Hidden names never are.
 */
export function isCandidateName(name: string): boolean {
  if (name.startsWith('.')) return false;
  if (FORMATS.some((f) => (f.names.never ?? []).some((re) => re.test(name)))) return false;
  return FORMATS.some((f) => claimsByName(f, name));
}

/** The name without a checkpoint extension (the longest that matches), for reading a step from it. */
export function stripCheckpointExtension(name: string): string {
  const ends = FORMATS.flatMap((f) => f.names.extensions).filter((e) => lower(name).endsWith(e));
  const longest = ends.reduce((a, e) => Math.max(a, e.length), 0);
  return name.slice(0, name.length - longest);
}

/** The file name endings of checkpoints, for messages. */
export const CHECKPOINT_EXTENSIONS: readonly string[] = FORMATS.flatMap((f) => f.names.extensions);

/** File names that hold a whole model inside a checkpoint folder (`model.safetensors`). */
export const SINGLE_FILE_NAMES: readonly string[] = FORMATS.flatMap((f) => f.names.single);
/** Index file names of sharded checkpoints, in format order. */
export const INDEX_FILE_NAMES: readonly string[] = FORMATS.flatMap((f) => f.names.index);

/** True for the files that make a folder a checkpoint: a whole-model file, a shard, an index. */
export function isOwnModelFile(name: string): boolean {
  return (
    SINGLE_FILE_NAMES.includes(name) ||
    INDEX_FILE_NAMES.includes(name) ||
    FORMATS.some((f) => f.names.shard?.test(name))
  );
}

/** True when a folder holding these names is a checkpoint itself (rather than a run of them). */
export function holdsCheckpoint(names: readonly string[]): boolean {
  return names.some(isOwnModelFile);
}

/**
 * Opens a checkpoint file in the format its first bytes show. When no format recognises them,
 * the format the name claims opens it (so a truncated `x.safetensors` gets safetensors' own
 * precise error); otherwise it is refused.
 */
export async function openCheckpointFile(path: string, options: OpenOptions = {}): Promise<FormatFile> {
  let head: Uint8Array;
  let size: number;
  try {
    const reader = await openReader(path);
    try {
      size = reader.size;
      head = new Uint8Array(Math.min(HEAD_BYTES, size));
      await reader.read(0, head);
    } finally {
      await reader.close();
    }
  } catch (e) {
    throw storageError(path, e, 'open');
  }
  const format = FORMATS.find((f) => f.detect(head, size)) ?? FORMATS.find((f) => claimsByName(f, basename(path)));
  if (format === undefined) {
    throw new AvgCkptError(
      'unknown-format',
      `is not a checkpoint in a format avg-ckpt reads (${FORMATS.map((f) => f.name).join(', ')})`,
      { file: path },
    );
  }
  return format.open(path, options);
}
