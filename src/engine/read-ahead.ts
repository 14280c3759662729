/**
 * Keeps several reads in flight while the caller computes: the reads run in libuv's thread
 * pool (UV_THREADPOOL_SIZE threads, 4 by default), so disk I/O overlaps with the arithmetic.
 */
import { rangeBytes, readElements, type ElementRange } from '../io/formats/read-elements.js';
import type { FilePool } from '../io/storage/file-pool.js';

/** Elements [start, start + count) of a tensor source, in C order. */
export type ReadJob = ElementRange;

export class ReadAhead {
  private readonly inFlight: Array<Promise<Uint8Array>> = [];
  private readonly free: Uint8Array[];
  private readonly bufferBytes: number;
  private done = false;

  /**
   * @param jobs read jobs, consumed lazily in order
   * @param depth reads in flight at most
   * @param buffers the buffers reads go to (each at least the largest job's length, 8-byte
   *   aligned), recycled: a read starts only when one is free
   */
  constructor(
    private readonly pool: FilePool,
    private readonly jobs: Iterator<ReadJob>,
    private readonly depth: number,
    buffers: readonly Uint8Array[],
  ) {
    this.free = [...buffers];
    this.bufferBytes = buffers[0]?.byteLength ?? 0;
    this.fill();
  }

  private fill(): void {
    while (!this.done && this.inFlight.length < this.depth && this.free.length > 0) {
      const next = this.jobs.next();
      if (next.done) {
        this.done = true;
        return;
      }
      const job = next.value;
      const buf = this.free.pop() as Uint8Array;
      const length = rangeBytes(job);
      const p = readElements(this.pool, job.source, job.start, job.count, buf).then(() => buf.subarray(0, length));
      p.catch(() => undefined); // surfaced when awaited in order
      this.inFlight.push(p);
    }
  }

  /** The next job's bytes, valid until `release` is called with them. */
  async next(): Promise<Uint8Array> {
    this.fill();
    const p = this.inFlight.shift();
    if (p === undefined) throw new Error(this.done ? 'ReadAhead: no more jobs' : 'ReadAhead: every buffer is held');
    return await p;
  }

  /** Returns a buffer from `next` for reuse and starts more reads. */
  release(bytes: Uint8Array): void {
    this.free.push(new Uint8Array(bytes.buffer, bytes.byteOffset, this.bufferBytes));
    this.fill();
  }

  /** Waits for the reads still in flight (after an error), so no read outlives the merge. */
  async drain(): Promise<void> {
    this.done = true;
    await Promise.allSettled(this.inFlight.splice(0));
  }
}
