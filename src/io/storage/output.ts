/**
 * An output file or folder wherever it goes: a local one is written under a temporary name and
 * renamed into place (AtomicOutput); an `s3://` one is uploaded object by object and committed
 * last (S3Output: a folder is finished when its `_SUCCESS` marker exists). Either way a failed
 * or interrupted run leaves no partial output that looks complete.
 */
import { open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from '../../errors.js';
import { AtomicOutput } from '../atomic-output.js';
import { joinPath } from './paths.js';
import { folderPrefix, isS3Path, parseS3Path } from './s3-location.js';

/** Written last into a folder output in object storage (and by --finalize): its presence means the rest is complete. */
export const SUCCESS_MARKER = '_SUCCESS';

/** Sequential bytes into one output file. */
export interface ByteSink {
  /** Appends `bytes`; the caller may reuse its buffer once this settles. */
  write(bytes: Uint8Array): Promise<void>;
  /** Makes the bytes durable (fsync) or visible (upload completed). */
  close(): Promise<void>;
  /** Abandons the file. */
  discard(): Promise<void>;
}

export interface Output {
  readonly target: string;
  readonly kind: 'file' | 'dir';
  /** The path messages name: the target itself, or `name` inside a folder target. */
  shownAs(name?: string): string;
  /** A new file of the output (`name` inside a folder; none for a file output). */
  create(name?: string, expectedSize?: number): Promise<ByteSink>;
  /** A small file written whole (an index, a config file). */
  put(name: string, bytes: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Bytes written between background flushes: the disk writes the output back while the merge
 * goes on, instead of all of it in the fsync at close (seconds for a model of many GB).
 */
const FLUSH_EVERY = 64 << 20;
/**
 * One background flush at a time in the whole process: a flush holds one of libuv's threads
 * until the disk has the bytes, and the reads run on those threads too (with a flush per output
 * file in flight, 4 outputs held the whole default pool: the merge then waited 60% longer for
 * its reads, measured).
 */
let flushInFlight = false;

class LocalFileSink implements ByteSink {
  private written = 0;
  private unflushed = 0;
  /** The background flush in flight, if any; its failure is reported by close. */
  private flushing: Promise<void> | null = null;
  private flushFailure: unknown;

  constructor(
    private readonly fh: FileHandle,
    private readonly shown: string,
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.byteLength - done, this.written);
        done += bytesWritten;
        this.written += bytesWritten;
      }
    } catch (e) {
      throw ioError(this.shown, e, 'write');
    }
    this.unflushed += bytes.byteLength;
    if (this.unflushed >= FLUSH_EVERY && !flushInFlight) {
      this.unflushed = 0;
      flushInFlight = true;
      this.flushing = this.fh
        .datasync()
        .catch((e: unknown) => {
          this.flushFailure ??= e;
        })
        .finally(() => {
          this.flushing = null;
          flushInFlight = false;
        });
    }
  }

  async close(): Promise<void> {
    try {
      await this.flushing;
      if (this.flushFailure !== undefined) throw this.flushFailure;
      await this.fh.sync();
    } catch (e) {
      throw ioError(this.shown, e, 'flush to disk');
    } finally {
      await this.fh.close().catch(() => undefined);
    }
  }

  async discard(): Promise<void> {
    await this.flushing; // not on a closed descriptor
    await this.fh.close().catch(() => undefined);
  }
}

/** A new local file (never an existing one), written sequentially; `shown` names it in messages. */
export async function createLocalFile(path: string, shown = path): Promise<ByteSink> {
  try {
    return new LocalFileSink(await open(path, 'wx'), shown);
  } catch (e) {
    throw ioError(shown, e, 'create');
  }
}

class LocalOutput implements Output {
  constructor(private readonly atomic: AtomicOutput) {}

  get target(): string {
    return this.atomic.target;
  }

  get kind(): 'file' | 'dir' {
    return this.atomic.kind;
  }

  shownAs(name?: string): string {
    return this.kind === 'file' || name === undefined ? this.target : join(this.target, name);
  }

  private where(name?: string): string {
    return this.kind === 'file' || name === undefined ? this.atomic.tempPath : join(this.atomic.tempPath, name);
  }

  create(name?: string): Promise<ByteSink> {
    return createLocalFile(this.where(name), this.shownAs(name));
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    try {
      await writeFile(this.where(name), bytes, { flush: true });
    } catch (e) {
      throw ioError(this.shownAs(name), e, 'write');
    }
  }

  commit(): Promise<void> {
    return this.atomic.commit();
  }

  abort(): Promise<void> {
    return this.atomic.abort();
  }
}

/** Whether an S3 output was begun (only then is there anything to abort on a signal). */
let s3Used = false;

/** Starts an output at `target` (refused when it exists, unless `force`). */
export async function beginOutput(target: string, kind: 'file' | 'dir', force: boolean): Promise<Output> {
  if (!isS3Path(target)) return new LocalOutput(await AtomicOutput.begin(target, kind, force));
  s3Used = true;
  const { s3Store } = await import('./s3.js');
  const { S3Output } = await import('./s3-writer.js');
  const out = await S3Output.begin(s3Store(), target, kind, force);
  return {
    target,
    kind,
    shownAs: (name) => (kind === 'file' || name === undefined ? target : joinPath(target, name)),
    create: async (name, expectedSize) => {
      const w = out.create(name, expectedSize);
      return { write: (b) => w.write(b), close: () => w.close(), discard: () => w.discard() };
    },
    put: (name, bytes) => out.put(name, bytes),
    commit: () => out.commit(),
    abort: () => out.abort(),
  };
}

/** Whether an S3 output was begun in this process (then a signal must wait to abort it). */
export function hasObjectOutputs(): boolean {
  return s3Used;
}

/** Aborts S3 outputs still being written (on a signal); local ones are removed synchronously elsewhere. */
export async function abortObjectOutputs(): Promise<void> {
  if (!hasObjectOutputs()) return;
  const { abortS3Outputs } = await import('./s3-writer.js');
  await abortS3Outputs();
}

/** A small file written whole and atomically, replacing what is there. */
export async function writeWhole(path: string, bytes: Uint8Array): Promise<void> {
  const out = await beginOutput(path, 'file', true);
  try {
    const sink = await out.create(undefined, bytes.byteLength);
    await sink.write(bytes);
    await sink.close();
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  }
}

/** Removes a file or a folder with everything in it (for S3: every key below the prefix). */
export async function removeTree(path: string): Promise<void> {
  if (!isS3Path(path)) {
    try {
      await rm(path, { recursive: true, force: true });
    } catch (e) {
      throw ioError(path, e, 'remove');
    }
    return;
  }
  const { s3Store } = await import('./s3.js');
  const store = s3Store();
  const { bucket, key } = parseS3Path(path);
  const keys = (await store.listKeys(bucket, folderPrefix(key))).map((o) => o.key);
  if ((await store.head(path)) !== undefined) keys.push(key);
  if (keys.length > 0) await store.deleteKeys(bucket, keys);
}
