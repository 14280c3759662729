/**
 * Positional reads over many files with a bounded number of open readers: a 1,000-checkpoint
 * series of sharded files would otherwise exceed the process's descriptor limit.
 */
import { openReader, storageError, type RangedReader } from './storage.js';

export class FilePool {
  private readonly readers = new Map<string, Promise<RangedReader>>();

  constructor(private readonly maxOpen = 64) {}

  private async reader(path: string): Promise<RangedReader> {
    let r = this.readers.get(path);
    if (r !== undefined) {
      // refresh LRU position
      this.readers.delete(path);
      this.readers.set(path, r);
      return r;
    }
    while (this.readers.size >= this.maxOpen) {
      const [oldest, old] = this.readers.entries().next().value as [string, Promise<RangedReader>];
      this.readers.delete(oldest);
      void old.then((o) => o.close()).catch(() => undefined);
    }
    r = openReader(path).catch((e: unknown) => {
      this.readers.delete(path);
      throw storageError(path, e, 'open for reading');
    });
    this.readers.set(path, r);
    return r;
  }

  /** Reads exactly `length` bytes at `position` into `into` (from its start). */
  async read(path: string, position: number, into: Uint8Array, length = into.byteLength): Promise<void> {
    const r = await this.reader(path);
    try {
      await r.read(position, into, length);
    } catch (e) {
      throw storageError(path, e, 'read');
    }
  }

  async close(): Promise<void> {
    const all = [...this.readers.values()];
    this.readers.clear();
    await Promise.all(all.map((r) => r.then((o) => o.close()).catch(() => undefined)));
  }
}
