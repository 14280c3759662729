/** The files that make a checkpoint folder loadable besides its weights. */
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from '../errors.js';

/**
 * Copied from the newest checkpoint folder. Training state (optimizer, scheduler, RNG,
 * trainer_state.json) is deliberately not copied: it describes that step, not the average.
 */
const CONFIG_FILE = /^(config\.json|generation_config\.json|preprocessor_config\.json|tokenizer(_config)?\.json|special_tokens_map\.json|added_tokens\.json|vocab\.(json|txt)|merges\.txt|tokenizer\.model|spiece\.model|sentencepiece\.bpe\.model|chat_template\.(json|jinja))$/;

export async function copyConfigFiles(fromDir: string, toDir: string): Promise<string[]> {
  const names = (await readdir(fromDir)).filter((n) => CONFIG_FILE.test(n)).sort();
  for (const n of names) {
    try {
      await copyFile(join(fromDir, n), join(toDir, n));
    } catch (e) {
      throw ioError(join(fromDir, n), e, 'copy');
    }
  }
  return names;
}
