/**
 * Atomic outputs: everything is written under a temporary name in the target's own folder
 * (same filesystem), fsynced, then renamed into place. A failed or interrupted run leaves the
 * target as it was and removes its temporary files.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AvgCkptError, ioError } from '../errors.js';

const live = new Set<string>();
/** A temporary output -> the first of its parent folders that avg-ckpt created for it. */
const createdFolders = new Map<string, string>();

/** Removes the folders created for an abandoned output, innermost first, while they are empty. */
function removeCreatedFolders(tempPath: string): void {
  const top = createdFolders.get(tempPath);
  createdFolders.delete(tempPath);
  if (top === undefined) return;
  for (let dir = dirname(tempPath); dir.length >= top.length; dir = dirname(dir)) {
    try {
      rmdirSync(dir);
    } catch {
      return; // not empty (someone else wrote there) or already gone
    }
    if (dir === top) return;
  }
}
/** A previous output moved aside during a --force folder replacement -> where it belongs. */
const asides = new Map<string, string>();

/** Registers a temporary file or folder (not an output) for removal on failure or interruption. */
export function trackTemporary(path: string): void {
  live.add(path);
}

export function untrackTemporary(path: string): void {
  live.delete(path);
}

/**
 * Removes every temporary output still in progress, and puts back a previous output that was
 * moved aside but not yet replaced (synchronous: used from signal handlers).
 */
export function removeTemporaryOutputs(): void {
  for (const p of live) {
    rmSync(p, { recursive: true, force: true });
    removeCreatedFolders(p);
  }
  live.clear();
  for (const [aside, target] of asides) {
    if (existsSync(target)) rmSync(aside, { recursive: true, force: true });
    else renameSync(aside, target);
  }
  asides.clear();
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // some filesystems refuse fsync on folders; the rename itself is still atomic
  }
}

export class AtomicOutput {
  private done = false;

  private constructor(
    /** Where the caller writes: a file path, or a folder for folder outputs. */
    readonly tempPath: string,
    readonly target: string,
    readonly kind: 'file' | 'dir',
    private readonly force: boolean,
  ) {}

  static async begin(target: string, kind: 'file' | 'dir', force: boolean): Promise<AtomicOutput> {
    if (!force && (await exists(target))) {
      throw new AvgCkptError('output-exists', 'already exists; pass --force to replace it', { file: target });
    }
    const parent = dirname(target);
    let createdParent: string | undefined;
    try {
      // the first folder mkdir -p created, if any: it goes again if the output is abandoned
      createdParent = await mkdir(parent, { recursive: true });
    } catch (e) {
      throw ioError(parent, e, 'create the output folder');
    }
    const tempPath = join(parent, `.${basename(target)}.tmp-${randomBytes(4).toString('hex')}`);
    live.add(tempPath);
    if (createdParent !== undefined) createdFolders.set(tempPath, createdParent);
    if (kind === 'dir') {
      try {
        await mkdir(tempPath);
      } catch (e) {
        live.delete(tempPath);
        throw ioError(tempPath, e, 'create a temporary folder');
      }
    }
    return new AtomicOutput(tempPath, target, kind, force);
  }

  /** Moves the finished output into place. Files inside a folder output must be fsynced already. */
  async commit(): Promise<void> {
    if (this.done) return;
    const parent = dirname(this.target);
    if (this.kind === 'dir') await fsyncDir(this.tempPath);
    try {
      if (this.kind === 'dir' && this.force && (await exists(this.target))) {
        // A folder cannot be renamed over a non-empty folder: move the old one aside first.
        const old = `${this.tempPath}.old`;
        asides.set(old, this.target);
        await rename(this.target, old);
        try {
          await rename(this.tempPath, this.target);
        } catch (e) {
          await rename(old, this.target); // the previous output goes back where it was
          asides.delete(old);
          throw e;
        }
        asides.delete(old);
        await rm(old, { recursive: true, force: true });
      } else if (this.kind === 'file' && !this.force) {
        // link() never replaces: of two runs racing for the same new output, exactly one wins
        try {
          await link(this.tempPath, this.target);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new AvgCkptError(
              'output-exists',
              'appeared while avg-ckpt was writing it; pass --force to replace it',
              { file: this.target },
            );
          }
          throw e;
        }
        await rm(this.tempPath, { force: true });
      } else {
        if (!this.force && (await exists(this.target))) {
          throw new AvgCkptError(
            'output-exists',
            'appeared while avg-ckpt was writing it; pass --force to replace it',
            { file: this.target },
          );
        }
        await rename(this.tempPath, this.target);
      }
    } catch (e) {
      if (e instanceof AvgCkptError) throw e;
      throw ioError(this.target, e, 'move the finished output into place');
    }
    live.delete(this.tempPath);
    createdFolders.delete(this.tempPath);
    this.done = true;
    await fsyncDir(parent);
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await rm(this.tempPath, { recursive: true, force: true });
    live.delete(this.tempPath);
    removeCreatedFolders(this.tempPath);
  }
}
