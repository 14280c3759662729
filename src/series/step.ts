/** Training step of a checkpoint: from its name, else its metadata, else trainer_state.json. */
import { basename } from 'node:path';
import { stripCheckpointExtension, SINGLE_FILE_NAMES } from '../io/formats/registry.js';
import { joinPath } from '../io/storage/paths.js';
import { readWhole } from '../io/storage/storage.js';
import type { CheckpointFiles, StepSource } from './checkpoint.js';

/** Names that say "step": these are read from any name. */
const KEYWORD_PATTERNS = [
  /(?:^|[^a-z])(?:global_)?step[_=-]?(\d+)/i, // step_000500, ckpt_step_1000, epoch=3-step=1200
  /checkpoint_\d+_(\d+)/i, // fairseq checkpoint_<epoch>_<update>
  /checkpoint[-_]?(\d+)/i, // checkpoint-500
];
/** model_01000: the last number, only in a checkpoint's own name (never a run folder's, `rc5/`). */
const LAST_NUMBER = /(\d+)(?!.*\d)/;

/**
 * The step a name states, or undefined (`model.safetensors`, `final`). `keywordsOnly`: for the
 * name of a folder that may be the run rather than the checkpoint.
 */
export function stepFromName(path: string, keywordsOnly = false): number | undefined {
  const name = stripCheckpointExtension(basename(path));
  for (const re of keywordsOnly ? KEYWORD_PATTERNS : [...KEYWORD_PATTERNS, LAST_NUMBER]) {
    const m = re.exec(name);
    if (m) return Number(m[1]);
  }
  return undefined;
}

function asStep(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** Resolves the step of a checkpoint in the documented order of sources. */
export async function resolveStep(ck: CheckpointFiles): Promise<{ step: number; source: StepSource } | undefined> {
  // `checkpoint-500/model.safetensors` named as a file: the folder carries the step. Such a
  // folder, or one the user named, may be the run itself (`rc5/`): only "step" words count there.
  const inOwnFolder = ck.isFolder || SINGLE_FILE_NAMES.includes(basename(ck.path));
  const fromName = stepFromName(inOwnFolder ? ck.dir : ck.path, inOwnFolder && (!ck.isFolder || ck.how === 'named'));
  if (fromName !== undefined) return { step: fromName, source: 'name' };
  const fromMeta = asStep(ck.metadata.step) ?? asStep(ck.metadata.global_step);
  if (fromMeta !== undefined) return { step: fromMeta, source: 'metadata' };
  if (inOwnFolder) {
    try {
      const statePath = joinPath(ck.dir, 'trainer_state.json');
      const state = JSON.parse(new TextDecoder().decode(await readWhole(statePath))) as { global_step?: unknown };
      const s = asStep(state.global_step);
      if (s !== undefined) return { step: s, source: 'trainer_state' };
    } catch {
      // no trainer_state.json, not a regular file, or not JSON: fall through to the order given
    }
  }
  return undefined;
}
