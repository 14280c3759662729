/**
 * Finds the checkpoint series in what the user named: a run folder, a glob, or explicit files
 * and folders. Checkpoints are ordered by step, numerically (`checkpoint-100` after
 * `checkpoint-20`); when any step is unknown, the order given is kept.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import fg from 'fast-glob';
import { AvgCkptError, ioError } from '../errors.js';
import { isCheckpointFolder, loadCheckpoint, type Checkpoint } from './checkpoint.js';
import { resolveStep } from './step.js';

export interface Series {
  /** What the user named. */
  readonly inputs: readonly string[];
  /** Checkpoints in step order. */
  readonly checkpoints: readonly Checkpoint[];
  /** True when every step came from a name, metadata or trainer_state.json. */
  readonly stepsKnown: boolean;
}

async function kind(p: string): Promise<'file' | 'dir' | undefined> {
  try {
    return (await stat(p)).isDirectory() ? 'dir' : 'file';
  } catch {
    return undefined;
  }
}

/** A sub-folder's names; it can vanish after the run was listed (checkpoint rotation). */
async function listFolder(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    throw ioError(dir, e, 'list the checkpoint folder');
  }
}

/** The entries of a run folder that are checkpoints: sub-folders holding one, and .safetensors files. */
async function runEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw ioError(dir, e, 'list the run folder');
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // hidden entries, our own temporary outputs among them
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if ((await isCheckpointFolder(p)) || (await listFolder(p)).some((n) => n.endsWith('.safetensors'))) out.push(p);
    } else if (e.name.endsWith('.safetensors')) {
      out.push(p);
    }
  }
  return out.sort();
}

async function expand(inputs: readonly string[]): Promise<string[]> {
  const paths: string[] = [];
  for (const input of inputs) {
    const k = await kind(input);
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

/** Discovers and validates the headers of every checkpoint in `inputs`. */
export async function discoverSeries(inputs: readonly string[]): Promise<Series> {
  if (inputs.length === 0) throw new AvgCkptError('usage', 'name a run folder, a glob, or checkpoint files');
  let paths = await expand(inputs);
  if (paths.length === 1 && (await kind(paths[0])) === 'dir' && !(await isCheckpointFolder(paths[0]))) {
    paths = await runEntries(paths[0]);
    if (paths.length === 0) {
      throw new AvgCkptError('no-checkpoints', 'holds no checkpoints (no .safetensors files or checkpoint folders)', { file: inputs[0] });
    }
  }
  const checkpoints: Checkpoint[] = [];
  for (const p of paths) checkpoints.push(await loadCheckpoint(p));

  const steps = await Promise.all(checkpoints.map(resolveStep));
  const stepsKnown = steps.every((s) => s !== undefined);
  checkpoints.forEach((ck, i) => {
    const s = steps[i];
    if (stepsKnown && s !== undefined) {
      ck.step = s.step;
      ck.stepSource = s.source;
    } else {
      ck.step = i + 1;
      ck.stepSource = 'order';
    }
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
