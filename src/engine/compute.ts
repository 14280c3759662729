/**
 * The arithmetic of one chunk, on every thread the merge may use: for each output, zero its
 * float64 accumulator, add weight x input for each of its inputs in checkpoint order, encode to
 * the output dtype, check finiteness. The chunk's elements are split into blocks that the
 * threads claim through a shared counter (Atomics), so the split follows whichever thread gets
 * the CPU on a shared machine, and a block's accumulator is still in cache when it is encoded.
 * Every element is computed by the same operations in the same order whichever thread takes
 * it: the bytes are identical for any number of threads.
 *
 * All buffers live in one `WebAssembly.Memory` (an Arena's; shared when there are workers), so
 * a job is a few offsets and nothing is copied between threads.
 */
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bytesPerElement, type ReadableFloat, type WritableFloat } from '../io/dtype.js';
import { encode } from '../io/float-codec.js';
import { accumulateIn, hasNonFiniteIn, simdEncoder, zeroIn } from './kernels.js';

/** One output's share of a chunk: which inputs (index into `ChunkJob.inputs`) with which weights. */
export interface OutputJob {
  /** Byte offsets of its float64 accumulator and its encoded output. */
  readonly acc: number;
  readonly out: number;
  readonly dt: WritableFloat;
  /** [input index, weight], in checkpoint order (the order of the additions). */
  readonly terms: ReadonlyArray<readonly [number, number]>;
}

export interface ChunkJob {
  /** Elements in the chunk. */
  readonly n: number;
  /** Byte offset of the Int32 block counter (4-aligned), 0 when the job is posted. */
  readonly counter: number;
  /** Byte offsets and dtypes of the inputs' elements [0, n) of the chunk. */
  readonly inputs: ReadonlyArray<{ readonly offset: number; readonly dtype: ReadableFloat }>;
  readonly outputs: readonly OutputJob[];
  /** Whether to look for non-finite encoded values. */
  readonly check: boolean;
}

/**
 * Elements per claimed block: a multiple of 8 (the SIMD kernels' step), small enough that the
 * accumulator block (128 KiB) and its inputs stay in a core's cache from the first addition to
 * the encode, and that the last thread to finish a chunk waits well under a millisecond.
 */
export const BLOCK = 1 << 14;

/** Encodes float64 `acc` to `out` as `dt`: SIMD for the bulk where it has a kernel, JS for the tail. */
export function encodeIn(memory: WebAssembly.Memory, dt: WritableFloat, acc: Float64Array, out: Uint8Array): void {
  const simd = simdEncoder(memory, dt);
  const size = bytesPerElement(dt);
  const bulk = simd === null ? 0 : acc.length - (acc.length % 8); // 8: every encoder's step divides it
  if (simd !== null && bulk > 0) simd(acc.byteOffset, out.byteOffset, bulk);
  encode(dt, acc.subarray(bulk), out.subarray(bulk * size));
}

/**
 * Computes blocks of `job` until none are left; for each output, whether one of its blocks
 * computed here holds a non-finite value (always false without `check`).
 */
export function computeBlocks(job: ChunkJob, memory: WebAssembly.Memory): boolean[] {
  const buffer = memory.buffer;
  const counter = new Int32Array(buffer, job.counter, 1);
  const nonFinite = job.outputs.map(() => false);
  for (let start = Atomics.add(counter, 0, 1) * BLOCK; start < job.n; start = Atomics.add(counter, 0, 1) * BLOCK) {
    const m = Math.min(BLOCK, job.n - start);
    const inputs = job.inputs.map(({ offset, dtype }) => {
      const size = bytesPerElement(dtype);
      return new Uint8Array(buffer, offset + start * size, m * size);
    });
    job.outputs.forEach((o, k) => {
      const acc = new Float64Array(buffer, o.acc + start * 8, m);
      zeroIn(memory, acc);
      for (const [i, w] of o.terms) accumulateIn(memory, job.inputs[i].dtype, inputs[i], acc, w);
      const size = bytesPerElement(o.dt);
      const out = new Uint8Array(buffer, o.out + start * size, m * size);
      encodeIn(memory, o.dt, acc, out);
      if (job.check && !nonFinite[k]) nonFinite[k] = hasNonFiniteIn(memory, o.dt, out);
    });
  }
  return nonFinite;
}

/** What a worker is started with (see compute-worker.ts). */
export interface WorkerInit {
  memory: WebAssembly.Memory;
}

/** The compiled worker script: absent when running the TypeScript sources (vitest). */
const WORKER_URL = new URL('./compute-worker.js', import.meta.url);

/** The default thread count: the cores this process may use. */
export function defaultThreads(): number {
  return availableParallelism();
}

/**
 * Element additions (elements x inputs, summed over the averaged tensors) per thread beyond the
 * first, below which no more threads are started: a worker costs ~55 ms of CPU to start, about
 * what 32 M additions cost one thread. AVG_CKPT_THREAD_MIN_WORK overrides it (the tests start
 * workers on small inputs with 0).
 */
const MIN_WORK_PER_THREAD = Number(process.env.AVG_CKPT_THREAD_MIN_WORK ?? 32 << 20);

/** Threads to use for `work` additions when `requested` are allowed (1 where workers cannot run). */
export function threadsFor(requested: number, work: number): number {
  if (requested <= 1 || !existsSync(fileURLToPath(WORKER_URL))) return 1;
  const useful = MIN_WORK_PER_THREAD <= 0 ? requested : 1 + Math.floor(work / MIN_WORK_PER_THREAD);
  return Math.max(1, Math.min(requested, useful));
}

interface Pending {
  left: number;
  nonFinite: boolean[];
  resolve: (nonFinite: boolean[]) => void;
  reject: (e: Error) => void;
}

/** Runs chunk jobs on this thread and `threads - 1` workers over `memory`. */
export class ChunkComputer {
  private readonly workers: Worker[] = [];
  private pending: Pending | null = null;
  private failure: Error | null = null;

  /** @param memory shared when `threads` > 1 */
  constructor(
    private readonly memory: WebAssembly.Memory,
    threads: number,
  ) {
    for (let i = 1; i < threads; i++) {
      const w = new Worker(WORKER_URL, { workerData: { memory } satisfies WorkerInit });
      w.on('message', (nonFinite: boolean[]) => this.settle(null, nonFinite));
      w.on('error', (e: Error) => this.settle(e, []));
      w.on('exit', (code) => this.settle(new Error(`a compute worker exited (code ${code})`), []));
      this.workers.push(w);
    }
  }

  private settle(err: Error | null, nonFinite: boolean[]): void {
    if (err !== null) this.failure ??= err;
    const p = this.pending;
    if (p === null) return;
    if (err !== null) {
      this.pending = null;
      p.reject(err);
      return;
    }
    nonFinite.forEach((b, k) => (p.nonFinite[k] ||= b));
    if (--p.left === 0) {
      this.pending = null;
      p.resolve(p.nonFinite);
    }
  }

  /**
   * Computes `job` (its counter reset here) with every thread; resolves, for each output, to
   * whether a non-finite value was encoded.
   */
  async run(job: ChunkJob): Promise<boolean[]> {
    if (this.failure !== null) throw this.failure;
    new Int32Array(this.memory.buffer, job.counter, 1)[0] = 0; // nobody reads it until the job is posted
    if (this.workers.length === 0) return computeBlocks(job, this.memory);
    const theirs = new Promise<boolean[]>((resolve, reject) => {
      this.pending = { left: this.workers.length, nonFinite: job.outputs.map(() => false), resolve, reject };
    });
    theirs.catch(() => undefined); // surfaced below, after this thread's share
    for (const w of this.workers) w.postMessage(job);
    const mine = computeBlocks(job, this.memory);
    const all = await theirs;
    return mine.map((b, k) => b || all[k]);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
