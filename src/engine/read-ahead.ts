/**
 * Keeps several positional reads in flight while the caller accumulates: the reads run in
 * libuv's thread pool, so disk I/O overlaps with the arithmetic on the main thread.
 */
import { rangeBytes, readElements, type ElementRange } from '../io/formats/read-elements.js';
import type { FilePool } from '../io/storage/file-pool.js';

/** Elements [start, start + count) of a tensor source, in C order. */
export type ReadJob = ElementRange;

export class ReadAhead {
  private readonly inFlight: Array<Promise<Uint8Array>> = [];
  private readonly free: Uint8Array[] = [];
  private done = false;

  /**
   * @param jobs read jobs, consumed lazily in order
   * @param depth reads in flight at most
   * @param maxLength the largest job's length in bytes: buffers are this size and recycled
   * @param alloc makes a buffer of that size, 8-byte aligned: at most `depth` plus the number
   *   the caller holds (has not released) at once are made
   */
  constructor(
    private readonly pool: FilePool,
    private readonly jobs: Iterator<ReadJob>,
    private readonly depth: number,
    private readonly maxLength: number,
    private readonly alloc: (length: number) => Uint8Array = (n) => new Uint8Array(n),
  ) {
    this.fill();
  }

  private fill(): void {
    while (!this.done && this.inFlight.length < this.depth) {
      const next = this.jobs.next();
      if (next.done) {
        this.done = true;
        return;
      }
      const job = next.value;
      const buf = this.free.pop() ?? this.alloc(this.maxLength);
      const length = rangeBytes(job);
      const p = readElements(this.pool, job.source, job.start, job.count, buf).then(() => buf.subarray(0, length));
      p.catch(() => undefined); // surfaced when awaited in order
      this.inFlight.push(p);
    }
  }

  /** The next job's bytes, valid until `release` is called with them. */
  async next(): Promise<Uint8Array> {
    const p = this.inFlight.shift();
    if (p === undefined) throw new Error('ReadAhead: no more jobs');
    const bytes = await p;
    return bytes;
  }

  /** Returns a buffer from `next` for reuse and starts more reads. */
  release(bytes: Uint8Array): void {
    this.free.push(new Uint8Array(bytes.buffer, bytes.byteOffset, this.maxLength));
    this.fill();
  }

  /** Waits for the reads still in flight (after an error), so no read outlives the merge. */
  async drain(): Promise<void> {
    this.done = true;
    await Promise.allSettled(this.inFlight.splice(0));
  }
}
