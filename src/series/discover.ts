/**
 * Finds the checkpoint series in what the user named: run folders, globs, or explicit files and
 * folders. Checkpoints are ordered by step, numerically (`checkpoint-100` after
 * `checkpoint-20`). Discovery never guesses silently: what it leaves out is said in `notes`,
 * and a checkpoint without a step among checkpoints with steps is refused, not slotted in by
 * the text order of a listing.
 */
import { basename } from 'node:path';
import fg from 'fast-glob';
import { AvgCkptError } from '../errors.js';
import type { OpenOptions } from '../io/formats/format.js';
import { CHECKPOINT_EXTENSIONS, holdsCheckpoint, isCandidateName, isOwnModelFile } from '../io/formats/registry.js';
import { joinPath } from '../io/storage/paths.js';
import { globS3 } from '../io/storage/s3-backend.js';
import { isS3Path } from '../io/storage/s3-location.js';
import { kindOf, listDir, storageError } from '../io/storage/storage.js';
import { isCheckpointFolder, readCheckpointFiles, type FoundHow } from './checkpoint.js';
import type { Checkpoint, CheckpointFiles } from './checkpoint.js';
import { resolveStep } from './step.js';

export interface Series {
  /** What the user named. */
  readonly inputs: readonly string[];
  /** Checkpoints in step order. */
  readonly checkpoints: readonly Checkpoint[];
  /** True when every step came from a name, metadata or trainer_state.json. */
  readonly stepsKnown: boolean;
  /** What discovery left out or assumed, one line each, for the commands to print. */
  readonly notes: readonly string[];
}

export interface DiscoverOptions {
  /** How checkpoint files are opened (e.g. which state dict). */
  readonly open?: OpenOptions;
}

interface Found {
  readonly path: string;
  readonly how: FoundHow;
}

/** A folder's entries; a sub-folder can vanish after the run was listed (checkpoint rotation). */
async function entriesOf(dir: string, doing: string) {
  try {
    return await listDir(dir);
  } catch (e) {
    throw storageError(dir, e, doing);
  }
}

/**
 * The entries of a run folder that are checkpoints: sub-folders holding one, and files whose
 * names a format claims. Hidden entries (our own temporary outputs among them) never are.
 * `strict`: sub-folders count only when they hold a checkpoint by its file names.
 */
async function runEntries(dir: string, strict = false): Promise<string[]> {
  const out: string[] = [];
  for (const e of await entriesOf(dir, 'list the run folder')) {
    if (e.name.startsWith('.')) continue;
    const p = joinPath(dir, e.name);
    if (e.kind === 'dir') {
      if (await isCheckpointFolder(p)) out.push(p);
      else if (!strict && (await entriesOf(p, 'list the checkpoint folder')).some((x) => isCandidateName(x.name))) {
        out.push(p);
      }
    } else if (isCandidateName(e.name)) {
      out.push(p);
    }
  }
  return out.sort();
}

/**
 * What a named folder stands for. A folder that holds a model and also checkpoints (a Hugging
 * Face Trainer `output_dir`: the final model at the top, the series in `checkpoint-*`) stands
 * for its checkpoints, and the top model is left out with a note; a folder holding only a
 * model is that checkpoint; any other folder is a run of checkpoints.
 */
async function folderMembers(dir: string, notes: string[]): Promise<Found[]> {
  const names = (await entriesOf(dir, 'list the run folder')).map((e) => e.name);
  if (holdsCheckpoint(names)) {
    const own = names.filter(isOwnModelFile).sort();
    const others = (await runEntries(dir, true)).filter((p) => !own.includes(basename(p)));
    if (others.length === 0) return [{ path: dir, how: 'named' }];
    notes.push(
      `${dir}: the model at its top (${own.join(', ')}) was left out; the series is the ${others.length} checkpoints ` +
        `inside it (name ${joinPath(dir, own[0])} to include it)`,
    );
    return others.map((path) => ({ path, how: 'listed' }));
  }
  const members = await runEntries(dir);
  if (members.length === 0) {
    const what = `no ${CHECKPOINT_EXTENSIONS.join(', ')} files or checkpoint folders`;
    throw new AvgCkptError('no-checkpoints', `holds no checkpoints (${what})`, { file: dir });
  }
  return members.map((path) => ({ path, how: 'listed' }));
}

/** Every input, each a run folder, a glob, a checkpoint folder or a checkpoint file, as one list. */
async function expand(inputs: readonly string[], notes: string[]): Promise<Found[]> {
  const found: Found[] = [];
  for (const input of inputs) {
    const k = await kindOf(input);
    if (k === 'dir') found.push(...(await folderMembers(input, notes)));
    else if (k !== undefined) found.push({ path: input, how: 'named' });
    else if (fg.isDynamicPattern(input)) {
      const matches = isS3Path(input)
        ? await globS3(input)
        : await fg(input, { onlyFiles: false, dot: false, followSymbolicLinks: true });
      if (matches.length === 0) {
        throw new AvgCkptError('no-checkpoints', 'the pattern matches nothing', { file: input });
      }
      for (const m of matches.sort()) {
        const dirRun = (await kindOf(m)) === 'dir' && !(await isCheckpointFolder(m));
        found.push(...(dirRun ? await folderMembers(m, notes) : [{ path: m, how: 'listed' as const }]));
      }
    } else throw new AvgCkptError('io', 'no such file or folder', { file: input });
  }
  return found;
}

/** The `name` of an avg-ckpt output from its `avg_ckpt` metadata, or undefined for a training checkpoint. */
function averageName(ck: CheckpointFiles): string | undefined {
  const recipe = ck.metadata.avg_ckpt;
  if (recipe === undefined) return undefined;
  try {
    const name = (JSON.parse(recipe) as { name?: unknown }).name;
    return typeof name === 'string' ? name : 'an average';
  } catch {
    return 'an average';
  }
}

interface StepsResult {
  readonly checkpoints: Checkpoint[];
  readonly stepsKnown: boolean;
}

/**
 * Each checkpoint with its step. When some are unknown, a listed one is refused (its place would
 * be a guess from text order); when only named ones are unknown, the order given is kept.
 */
async function withSteps(found: readonly CheckpointFiles[], notes: string[]): Promise<StepsResult> {
  const steps = await Promise.all(found.map((ck) => resolveStep(ck)));
  if (steps.every((s) => s !== undefined)) {
    const checkpoints = found.map((ck, i) => ({ ...ck, step: steps[i].step, stepSource: steps[i].source }));
    return { checkpoints, stepsKnown: true };
  }
  const without = found.filter((_, i) => steps[i] === undefined);
  const listed = without.find((ck) => ck.how === 'listed');
  if (listed !== undefined && without.length < found.length) {
    const others = found.length - without.length;
    throw new AvgCkptError(
      'missing-step',
      `has no step (not in its name, metadata or a trainer_state.json) while ${others} other checkpoints have one: ` +
        'move it out of the run, or name the checkpoints to average explicitly',
      { file: listed.path },
    );
  }
  const unknown = without.map((c) => c.path).join(', ');
  const who = without.length === found.length ? 'no checkpoint has a step' : `no step for ${unknown}`;
  notes.push(`${who}: the checkpoints keep the order given, as steps 1..${found.length}`);
  const checkpoints = found.map((ck, i) => ({ ...ck, step: i + 1, stepSource: 'order' as const }));
  return { checkpoints, stepsKnown: false };
}

/** Discovers and validates the headers of every checkpoint in `inputs`. */
export async function discoverSeries(inputs: readonly string[], options: DiscoverOptions = {}): Promise<Series> {
  if (inputs.length === 0) throw new AvgCkptError('usage', 'name a run folder, a glob, or checkpoint files');
  const notes: string[] = [];
  const found: CheckpointFiles[] = [];
  for (const f of await expand(inputs, notes)) {
    const ck = await readCheckpointFiles(f.path, options.open, f.how);
    const average = averageName(ck);
    if (average !== undefined && f.how === 'listed') {
      notes.push(`${f.path} was left out: avg-ckpt wrote it (${average}), not training (name it to include it)`);
      continue;
    }
    found.push(ck);
  }
  if (found.length === 0) {
    const why = 'holds no training checkpoints, only averages avg-ckpt wrote';
    throw new AvgCkptError('no-checkpoints', why, { file: inputs[0] });
  }
  const { checkpoints, stepsKnown } = await withSteps(found, notes);
  if (stepsKnown) {
    checkpoints.sort((a, b) => a.step - b.step);
    for (let i = 1; i < checkpoints.length; i++) {
      if (checkpoints[i].step === checkpoints[i - 1].step) {
        throw new AvgCkptError(
          'duplicate-step',
          `has step ${checkpoints[i].step}, like ${checkpoints[i - 1].path}: keep one of them`,
          { file: checkpoints[i].path },
        );
      }
    }
  }
  return { inputs, checkpoints, stepsKnown, notes };
}
