/**
 * Encoding the float64 sums to the output dtype, and the finiteness check on the result: the
 * largest CPU cost of a merge after the accumulate (bf16 in JS: ~1 s for 134 M elements, with the
 * SIMD kernel ~0.2 s; f16 is JS only). Above a size threshold a worker thread starts encoding
 * chunk k while the main thread accumulates chunk k+1; then the main thread takes the blocks of
 * chunk k the worker has not reached yet. Blocks are claimed through a shared counter, so the
 * split follows whichever thread gets the CPU (this machine is shared): with a fixed split the
 * main thread waited ~0.7 s per merge.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bytesPerElement, type WritableFloat } from '../io/dtype.js';
import { encode, firstNonFinite } from '../io/float-codec.js';
import { memoryOf, simdEncoder } from './kernels.js';

/**
 * Offsets into `buffer`: the accumulator, the output, and the Int32 block counter. `memory`, the
 * WebAssembly memory whose buffer it is (an Arena's), lets BF16 use the SIMD encoder.
 */
export interface EncodeJob {
  dt: WritableFloat;
  buffer: ArrayBuffer | SharedArrayBuffer;
  memory?: WebAssembly.Memory;
  acc: number;
  out: number;
  counter: number;
  n: number;
  check: boolean;
}

/** Elements per claimed block: small enough that the last thread to finish waits < 1 ms. */
const BLOCK = 1 << 16;

/** Encodes blocks of the job until none are left; true if one of them holds a non-finite value. */
export function encodeBlocks(j: EncodeJob): boolean {
  const counter = new Int32Array(j.buffer, j.counter, 1);
  const size = bytesPerElement(j.dt);
  // bf16/f16 with SIMD (several times the JS loop) where the job has the memory; JS takes the n % 8 tail
  const simd = j.memory === undefined ? null : simdEncoder(j.memory, j.dt);
  let nonFinite = false;
  for (let start = Atomics.add(counter, 0, 1) * BLOCK; start < j.n; start = Atomics.add(counter, 0, 1) * BLOCK) {
    const m = Math.min(BLOCK, j.n - start);
    const out = new Uint8Array(j.buffer, j.out + start * size, m * size);
    const bulk = simd === null ? 0 : m - (m % 8);
    if (simd !== null && bulk > 0) simd(j.acc + start * 8, j.out + start * size, bulk);
    encode(j.dt, new Float64Array(j.buffer, j.acc + (start + bulk) * 8, m - bulk), out.subarray(bulk * size));
    if (j.check && !nonFinite) nonFinite = firstNonFinite(j.dt, out) >= 0;
  }
  return nonFinite;
}

/**
 * Merges writing fewer F16/BF16 elements than this encode in-thread: a worker costs ~55 ms of CPU
 * to start, and 8 x bf16 merges (warm, medians of 6) gained nothing at 16 M output elements
 * (0.82 vs 0.79 s), 8% at 32 M (0.94 vs 1.02 s), 16% at 134 M. F32/F64 outputs never use it:
 * their encode is a typed-array copy, and 8 x 256 MB f32 took more CPU and no less time with it.
 * AVG_CKPT_WORKER_MIN_ELEMENTS overrides it (the tests force the worker with 0).
 */
const WORKER_MIN_ELEMENTS = Number(process.env.AVG_CKPT_WORKER_MIN_ELEMENTS ?? 32 << 20);

/** The compiled worker script: absent when running the TypeScript sources (vitest). */
const WORKER_URL = new URL('./encode-worker.js', import.meta.url);

/** Whether a merge writing `elements` F16/BF16 elements should use the worker (shared memory). */
export function wantsWorker(elements: number): boolean {
  return elements > 0 && elements >= WORKER_MIN_ELEMENTS && existsSync(fileURLToPath(WORKER_URL));
}

/** Encodes one chunk at a time, with a worker's help when it has one. */
export class ChunkEncoder {
  private readonly worker: Worker | null;
  private job: EncodeJob | null = null;
  private workerDone: Promise<boolean> = Promise.resolve(false);
  private pending: { resolve: (nonFinite: boolean) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  /** @param counter byte offset in `buffer` of 4 bytes (4-aligned) for the block counter */
  constructor(private readonly buffer: ArrayBuffer | SharedArrayBuffer, private readonly counter: number, worker: boolean) {
    this.worker = worker ? new Worker(WORKER_URL) : null;
    this.worker?.on('message', (nonFinite: boolean) => this.settle(null, nonFinite));
    this.worker?.on('error', (e: Error) => this.settle(e, false));
    this.worker?.on('exit', (code) => this.settle(new Error(`the encode worker exited (code ${code})`), false));
  }

  private settle(err: Error | null, nonFinite: boolean): void {
    const p = this.pending;
    this.pending = null;
    if (err !== null) this.failure ??= err;
    if (p === null) return;
    if (err !== null) p.reject(err);
    else p.resolve(nonFinite);
  }

  /** Hands `acc` (to encode as `dt` into `out`, both views of the buffer) to the worker. */
  start(dt: WritableFloat, acc: Float64Array, out: Uint8Array, check: boolean): void {
    new Int32Array(this.buffer, this.counter, 1)[0] = 0; // nobody reads it until the job is posted
    this.job = { dt, buffer: this.buffer, memory: memoryOf(this.buffer), acc: acc.byteOffset, out: out.byteOffset, counter: this.counter, n: acc.length, check };
    if (this.worker === null) return;
    if (this.failure !== null) {
      this.workerDone = Promise.reject(this.failure);
    } else {
      this.workerDone = new Promise((resolve, reject) => (this.pending = { resolve, reject }));
      this.worker.postMessage(this.job);
    }
    this.workerDone.catch(() => undefined); // surfaced by finish
  }

  /**
   * Encodes the blocks the worker has not taken and waits for the others; resolves to the index
   * of the first non-finite encoded element, or -1 (always -1 without `check`).
   */
  async finish(): Promise<number> {
    const j = this.job;
    if (j === null) throw new Error('ChunkEncoder: finish without start');
    this.job = null;
    const mine = encodeBlocks(j);
    const theirs = await this.workerDone;
    if (!mine && !theirs) return -1;
    return firstNonFinite(j.dt, new Uint8Array(j.buffer, j.out, j.n * bytesPerElement(j.dt)));
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
  }
}
