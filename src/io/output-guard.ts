/**
 * The output guard: no file avg-ckpt writes may be, hold, or lie inside one of its inputs, with
 * or without --force. Every command checks all of its outputs against all of its inputs before
 * it writes anything, so a slip such as `-o runs/x/checkpoint-20 --force` or `--report
 * val_labels.npy` ends with one line naming both, and the input as it was.
 *
 * Paths are compared as the filesystem resolves them: symlinks and `..` through realpath (for
 * an output that does not exist yet, through its nearest existing folder), and an existing
 * output is also compared by device and inode with every input file, which catches hard links.
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, normalize, resolve, sep } from 'node:path';
import { AvgCkptError } from '../errors.js';

/** A file or folder the command reads. */
export interface GuardedInput {
  readonly path: string;
  /** What it is, for the message: `checkpoint`, `ONNX model`, `validation data`... */
  readonly role: string;
}

/** A file or folder the command will write. */
export interface GuardedOutput {
  readonly path: string;
  /** What it is, for the message: `output`, `report`, `chart`... */
  readonly role: string;
}

/** A checkpoint's own files: the file or folder, its safetensors files, and its shard index. */
export function checkpointInputs(
  checkpoints: readonly { readonly path: string; readonly files: readonly string[]; readonly index?: string }[],
): GuardedInput[] {
  return checkpoints.flatMap((ck) =>
    [ck.path, ...ck.files, ...(ck.index === undefined ? [] : [ck.index])].map((path) => ({ path, role: 'checkpoint' })),
  );
}

/** Object-store keys (`s3://...`) have no inodes or symlinks: they are compared as written. */
const REMOTE = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * The path the filesystem means: existing paths through realpath; a path not there yet through
 * the realpath of its nearest existing ancestor, the rest appended (`..` is taken lexically only
 * past the part that exists, as the kernel would once the folders are created).
 */
async function physical(path: string): Promise<string> {
  if (REMOTE.test(path)) return path;
  // not path.resolve: it removes `a/link/..` lexically, while the kernel follows `link` first
  let p = isAbsolute(path) ? path : `${process.cwd()}${sep}${path}`;
  const rest: string[] = [];
  for (;;) {
    try {
      return normalize([await realpath(p), ...rest].join(sep));
    } catch {
      const up = dirname(p);
      if (up === p) return resolve(path);
      rest.unshift(basename(p));
      p = up;
    }
  }
}

async function identity(path: string): Promise<string | undefined> {
  if (REMOTE.test(path)) return undefined;
  try {
    const st = await stat(path);
    return st.isFile() ? `${st.dev}:${st.ino}` : undefined;
  } catch {
    return undefined;
  }
}

function inside(child: string, parent: string): boolean {
  return child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * Refuses (`output-is-input`) any output that is an input, holds one (a folder above it), or
 * lies inside one (an input folder), and two outputs that are the same file. Call it before the
 * first byte is written.
 */
export async function guardOutputs(outputs: readonly GuardedOutput[], inputs: readonly GuardedInput[]): Promise<void> {
  const ins = await Promise.all(
    inputs.map(async (i) => ({ ...i, real: await physical(i.path), id: await identity(i.path) })),
  );
  const seen: { real: string; out: GuardedOutput }[] = [];
  for (const out of outputs) {
    const real = await physical(out.path);
    const id = await identity(out.path);
    // the closest relation first: `is` the file says more than `lies inside` its folder
    const relations: [string, (i: (typeof ins)[number]) => boolean][] = [
      ['is', (i) => real === i.real || (id !== undefined && id === i.id)],
      ['holds', (i) => inside(i.real, real)],
      ['lies inside', (i) => inside(real, i.real)],
    ];
    for (const [how, holdsFor] of relations) {
      const i = ins.find(holdsFor);
      if (i === undefined) continue;
      throw new AvgCkptError(
        'output-is-input',
        `the ${out.role} ${how} the ${i.role} ${i.path}${how === 'is' && real !== i.real ? ' (the same file, by another name)' : ''}: ` +
          'an input is never replaced, not even with --force; write it somewhere else',
        { file: out.path },
      );
    }
    const twin = seen.find((s) => s.real === real);
    if (twin !== undefined)
      throw new AvgCkptError(
        'usage',
        `the ${out.role} and the ${twin.out.role} are the same file; name two different files`,
        { file: out.path },
      );
    seen.push({ real, out });
  }
}
