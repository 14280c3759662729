/**
 * Positional reads over many files with a bounded number of open handles: a 1,000-checkpoint
 * series of sharded files would otherwise exceed the process's descriptor limit.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { AvgCkptError, ioError } from '../errors.js';

export class FilePool {
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(private readonly maxOpen = 64) {}

  private async handle(path: string): Promise<FileHandle> {
    let h = this.handles.get(path);
    if (h !== undefined) {
      // refresh LRU position
      this.handles.delete(path);
      this.handles.set(path, h);
      return h;
    }
    while (this.handles.size >= this.maxOpen) {
      const [oldest, old] = this.handles.entries().next().value as [string, Promise<FileHandle>];
      this.handles.delete(oldest);
      void old.then((fh) => fh.close()).catch(() => undefined);
    }
    h = open(path, 'r').catch((e: unknown) => {
      this.handles.delete(path);
      throw ioError(path, e, 'open for reading');
    });
    this.handles.set(path, h);
    return h;
  }

  /** Reads exactly `length` bytes at `position` into `into` (from its start). */
  async read(path: string, position: number, into: Uint8Array, length = into.byteLength): Promise<void> {
    const fh = await this.handle(path);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        ({ bytesRead: n } = await fh.read(into, done, length - done, position + done));
      } catch (e) {
        throw ioError(path, e, 'read');
      }
      if (n === 0) {
        throw new AvgCkptError('io', `file ended at byte ${position + done} while reading ${length} bytes at ${position}: it was truncated or replaced while avg-ckpt read it`, { file: path });
      }
      done += n;
    }
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((h) => h.then((fh) => fh.close()).catch(() => undefined)));
  }
}
