/**
 * A Hugging Face sharded-checkpoint index (`model.safetensors.index.json`,
 * `pytorch_model.bin.index.json`): `{"weight_map": {tensor: shard file}}`. The index is
 * trusted, not a glob; shard names must stay inside the checkpoint folder.
 */
import { AvgCkptError } from '../errors.js';
import { childInside } from '../io/storage/paths.js';
import { readWhole, storageError } from '../io/storage/storage.js';

export interface ShardIndex {
  readonly path: string;
  /** Shard files in the order the index first names them. */
  readonly shards: readonly string[];
  /** Tensor -> the shard file the index places it in. */
  readonly placement: ReadonlyMap<string, string>;
}

export async function readShardIndex(dir: string, indexPath: string): Promise<ShardIndex> {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(await readWhole(indexPath)));
  } catch (e) {
    if (e instanceof SyntaxError)
      throw new AvgCkptError('invalid-index', `not valid JSON (${e.message})`, { file: indexPath });
    throw storageError(indexPath, e, 'read');
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new AvgCkptError('invalid-index', 'has no "weight_map" object', { file: indexPath });
  }
  const placement = new Map<string, string>();
  const shards: string[] = [];
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') {
      throw new AvgCkptError('invalid-index', 'weight_map entry is not a file name', { file: indexPath, tensor });
    }
    const shardPath = childInside(dir, shard);
    if (shardPath === undefined) {
      throw new AvgCkptError(
        'shard-path-escapes',
        `weight_map names "${shard}", which is outside the checkpoint folder`,
        { file: indexPath, tensor },
      );
    }
    if (!shards.includes(shardPath)) shards.push(shardPath);
    placement.set(tensor, shardPath);
  }
  if (shards.length === 0) throw new AvgCkptError('invalid-index', 'weight_map is empty', { file: indexPath });
  return { path: indexPath, shards, placement };
}
