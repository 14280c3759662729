/**
 * Finds the checkpoint series in what the user named: a run folder, a glob, or explicit files
 * and folders. Checkpoints are ordered by step, numerically (`checkpoint-100` after
 * `checkpoint-20`); when any step is unknown, the order given is kept.
 */
import { join } from 'node:path';
import fg from 'fast-glob';
import { AvgCkptError } from '../errors.js';
import type { OpenOptions } from '../io/formats/format.js';
import { CHECKPOINT_EXTENSIONS, isCandidateName } from '../io/formats/registry.js';
import { kindOf, listDir, storageError } from '../io/storage/storage.js';
import { isCheckpointFolder, readCheckpointFiles, type Checkpoint, type CheckpointFiles } from './checkpoint.js';
import { resolveStep } from './step.js';

export interface Series {
  /** What the user named. */
  readonly inputs: readonly string[];
  /** Checkpoints in step order. */
  readonly checkpoints: readonly Checkpoint[];
  /** True when every step came from a name, metadata or trainer_state.json. */
  readonly stepsKnown: boolean;
}

/** A sub-folder's names; it can vanish after the run was listed (checkpoint rotation). */
async function listFolder(dir: string): Promise<string[]> {
  try {
    return (await listDir(dir)).map((e) => e.name);
  } catch (e) {
    throw storageError(dir, e, 'list the checkpoint folder');
  }
}

/**
 * The entries of a run folder that are checkpoints: sub-folders holding one, and files whose
 * names a format claims. Hidden entries (our own temporary outputs among them) never are.
 */
async function runEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await listDir(dir);
  } catch (e) {
    throw storageError(dir, e, 'list the run folder');
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.kind === 'dir') {
      if ((await isCheckpointFolder(p)) || (await listFolder(p)).some(isCandidateName)) out.push(p);
    } else if (isCandidateName(e.name)) {
      out.push(p);
    }
  }
  return out.sort();
}

async function expand(inputs: readonly string[]): Promise<string[]> {
  const paths: string[] = [];
  for (const input of inputs) {
    const k = await kindOf(input);
    if (k !== undefined) {
      paths.push(input);
      continue;
    }
    if (fg.isDynamicPattern(input)) {
      const matches = await fg(input, { onlyFiles: false, dot: false, followSymbolicLinks: true });
      if (matches.length === 0) throw new AvgCkptError('no-checkpoints', 'the pattern matches nothing', { file: input });
      paths.push(...matches.sort());
      continue;
    }
    throw new AvgCkptError('io', 'no such file or folder', { file: input });
  }
  return paths;
}

export interface DiscoverOptions {
  /** How checkpoint files are opened (e.g. which state dict). */
  readonly open?: OpenOptions;
}

/** Discovers and validates the headers of every checkpoint in `inputs`. */
export async function discoverSeries(inputs: readonly string[], options: DiscoverOptions = {}): Promise<Series> {
  if (inputs.length === 0) throw new AvgCkptError('usage', 'name a run folder, a glob, or checkpoint files');
  let paths = await expand(inputs);
  if (paths.length === 1 && (await kindOf(paths[0])) === 'dir' && !(await isCheckpointFolder(paths[0]))) {
    paths = await runEntries(paths[0]);
    if (paths.length === 0) {
      throw new AvgCkptError('no-checkpoints', `holds no checkpoints (no ${CHECKPOINT_EXTENSIONS.join(', ')} files or checkpoint folders)`, { file: inputs[0] });
    }
  }
  const found: CheckpointFiles[] = [];
  for (const p of paths) found.push(await readCheckpointFiles(p, options.open));

  const steps = await Promise.all(found.map(resolveStep));
  const stepsKnown = steps.every((s) => s !== undefined);
  const checkpoints: Checkpoint[] = found.map((ck, i) => {
    const s = steps[i];
    return stepsKnown && s !== undefined ? { ...ck, step: s.step, stepSource: s.source } : { ...ck, step: i + 1, stepSource: 'order' };
  });
  if (stepsKnown) {
    checkpoints.sort((a, b) => a.step - b.step);
    for (let i = 1; i < checkpoints.length; i++) {
      if (checkpoints[i].step === checkpoints[i - 1].step) {
        throw new AvgCkptError('duplicate-step', `has step ${checkpoints[i].step}, like ${checkpoints[i - 1].path}: keep one of them`, { file: checkpoints[i].path });
      }
    }
  }
  return { inputs, checkpoints, stepsKnown };
}
