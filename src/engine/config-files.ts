/** The files that make a checkpoint folder loadable besides its weights. */
import type { Output } from '../io/storage/output.js';
import { joinPath } from '../io/storage/paths.js';
import { listDir, readWhole, storageError } from '../io/storage/storage.js';

/**
 * Copied from the newest checkpoint folder. Training state (optimizer, scheduler, RNG,
 * trainer_state.json) is deliberately not copied: it describes that step, not the average.
 */
const CONFIG_FILE =
  /^(config\.json|generation_config\.json|preprocessor_config\.json|tokenizer(_config)?\.json|special_tokens_map\.json|added_tokens\.json|vocab\.(json|txt)|merges\.txt|tokenizer\.model|spiece\.model|sentencepiece\.bpe\.model|chat_template\.(json|jinja))$/;

/** Copies the config files of `fromDir` (local or object storage) into the output folder. */
export async function copyConfigFiles(fromDir: string, out: Pick<Output, 'put'>): Promise<string[]> {
  let entries: Awaited<ReturnType<typeof listDir>>;
  try {
    entries = await listDir(fromDir);
  } catch (e) {
    throw storageError(fromDir, e, 'list the checkpoint folder');
  }
  const names = entries
    .filter((e) => e.kind !== 'dir' && CONFIG_FILE.test(e.name))
    .map((e) => e.name)
    .sort();
  for (const n of names) {
    let bytes: Uint8Array;
    try {
      bytes = await readWhole(joinPath(fromDir, n));
    } catch (e) {
      throw storageError(joinPath(fromDir, n), e, 'copy');
    }
    await out.put(n, bytes);
  }
  return names;
}
