/**
 * A new file written front to back: small writes are coalesced into 4 MiB ones, large ones go
 * straight out; `close` fsyncs. The one appending writer under the safetensors and .pt writers.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ioError } from '../errors.js';

const COALESCE = 4 << 20;

export class AppendFile {
  /** Bytes on disk so far (pending ones not included). */
  private onDisk = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  private constructor(private readonly fh: FileHandle, readonly path: string) {}

  /** Creates `path` (never replacing a file); `shownAs` is the name errors give. */
  static async create(path: string, shownAs = path): Promise<AppendFile> {
    try {
      return new AppendFile(await open(path, 'wx'), shownAs);
    } catch (e) {
      throw ioError(shownAs, e, 'create');
    }
  }

  /** Bytes appended so far, pending ones included: the position of the next byte. */
  get size(): number {
    return this.onDisk + this.pendingBytes;
  }

  /** Appends bytes (copied if they are kept for coalescing, so callers may reuse the buffer). */
  async append(bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength >= COALESCE) {
      await this.flush();
      await this.writeOut(bytes);
      return;
    }
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.byteLength;
    if (this.pendingBytes >= COALESCE) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const all = new Uint8Array(this.pendingBytes);
    let o = 0;
    for (const p of this.pending) {
      all.set(p, o);
      o += p.byteLength;
    }
    this.pending = [];
    this.pendingBytes = 0;
    await this.writeOut(all);
  }

  private async writeOut(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      try {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.byteLength - done, this.onDisk);
        done += bytesWritten;
        this.onDisk += bytesWritten;
      } catch (e) {
        throw ioError(this.path, e, 'write');
      }
    }
  }

  /** Flushes and fsyncs (the caller checks sizes first), then closes. */
  async close(): Promise<void> {
    try {
      await this.flush();
      try {
        await this.fh.sync();
      } catch (e) {
        throw ioError(this.path, e, 'flush to disk');
      }
    } finally {
      await this.fh.close().catch(() => undefined);
    }
  }

  /** Closes without flushing (the caller is abandoning the file). */
  async discard(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
