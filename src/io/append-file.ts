/**
 * A new file written front to back: small writes are coalesced into 4 MiB ones, the rest go
 * straight out from the caller's buffer (a merge writes a few hundred MiB in chunks of 0.5-4 MiB:
 * copying them cost the main thread two passes over the output and their garbage); `close`
 * fsyncs (or completes the upload). The one appending writer under the
 * safetensors and .pt writers, over a local file or an object (see storage/output.ts).
 */
import { createLocalFile, type ByteSink } from './storage/output.js';

/** Pending small appends are written once they reach this many bytes. */
const COALESCE = 4 << 20;
/** Appends of at least this many bytes are written as they are: one syscall each costs little. */
const DIRECT = 256 << 10;

export class AppendFile {
  /** Bytes on disk so far (pending ones not included). */
  private onDisk = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  private constructor(
    private readonly sink: ByteSink,
    readonly path: string,
  ) {}

  /** Creates local `path` (never replacing a file); `shownAs` is the name errors give. */
  static async create(path: string, shownAs = path): Promise<AppendFile> {
    return new AppendFile(await createLocalFile(path, shownAs), shownAs);
  }

  /** Appends to `sink` (a file of an output, local or in object storage); `shownAs` names it. */
  static over(sink: ByteSink, shownAs: string): AppendFile {
    return new AppendFile(sink, shownAs);
  }

  /** Bytes appended so far, pending ones included: the position of the next byte. */
  get size(): number {
    return this.onDisk + this.pendingBytes;
  }

  /** Appends bytes (copied if they are kept for coalescing, so callers may reuse the buffer). */
  async append(bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength >= DIRECT) {
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
    await this.sink.write(bytes);
    this.onDisk += bytes.byteLength;
  }

  /** Flushes and makes durable (the caller checks sizes first), then closes. */
  async close(): Promise<void> {
    try {
      await this.flush();
    } catch (e) {
      await this.sink.discard();
      throw e;
    }
    await this.sink.close();
  }

  /** Closes without flushing (the caller is abandoning the file). */
  async discard(): Promise<void> {
    await this.sink.discard();
  }
}
