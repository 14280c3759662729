/**
 * The streaming core: for each tensor, chunk by chunk, read the chunk from every contributing
 * checkpoint, accumulate in float64, cast once to the output dtype, write, move on. Memory is
 * a few chunk buffers whatever the model size or the number of checkpoints. Large merges
 * encode on a second thread (encoder.ts) while the next chunk is accumulated.
 */
import { AvgCkptError } from '../errors.js';
import { readElements } from '../io/formats/read-elements.js';
import { elementBytes, numelOf } from '../io/formats/tensor-source.js';
import type { FilePool } from '../io/storage/file-pool.js';
import { bytesPerElement, type ReadableFloat, type WritableFloat } from '../io/dtype.js';
import { decode } from '../io/float-codec.js';
import type { SafetensorsWriter } from '../io/safetensors/writer.js';
import type { PlannedTensor } from './plan.js';
import { ChunkEncoder, wantsWorker } from './encoder.js';
import { Arena } from './kernels.js';
import { ReadAhead, type ReadJob } from './read-ahead.js';

/** Elements per chunk: 16 MiB of float64 accumulator. */
export const CHUNK_ELEMENTS = 2 << 20;
/** Integer tensors are copied in chunks of (at most) this many bytes. */
const COPY_BYTES = 16 << 20;
const READ_DEPTH = 4;

export interface StreamProgress {
  bytesRead: number;
  tensorsDone: number;
}

export interface StreamOptions {
  allowNonfinite: boolean;
  onProgress?: (p: StreamProgress) => void;
}

interface Chunk {
  readonly tensor: PlannedTensor;
  /** First element of the chunk. */
  readonly start: number;
  readonly count: number;
  readonly last: boolean;
}

function numel(t: PlannedTensor): number {
  return numelOf(t.shape);
}

/** Elements per chunk of a tensor. */
function chunkElements(t: PlannedTensor): number {
  return t.mode === 'average' ? CHUNK_ELEMENTS : Math.max(1, Math.floor(COPY_BYTES / elementBytes(t.contributions[0].source)));
}

function* chunks(tensors: readonly PlannedTensor[]): Generator<Chunk> {
  for (const t of tensors) {
    const total = numel(t);
    const step = chunkElements(t);
    if (total === 0) {
      yield { tensor: t, start: 0, count: 0, last: true };
      continue;
    }
    for (let start = 0; start < total; start += step) {
      yield { tensor: t, start, count: Math.min(step, total - start), last: start + step >= total };
    }
  }
}

function readsOf(c: Chunk): ReadJob[] {
  if (c.count === 0) return []; // an empty tensor reads nothing (and must not queue empty reads)
  return c.tensor.contributions.map(({ source }) => ({ source, start: c.start, count: c.count }));
}

function* allReads(tensors: readonly PlannedTensor[]): Generator<ReadJob> {
  for (const c of chunks(tensors)) yield* readsOf(c);
}

function maxReadLength(tensors: readonly PlannedTensor[]): number {
  let m = 1;
  for (const t of tensors) {
    m = Math.max(m, Math.min(chunkElements(t), numel(t)) * elementBytes(t.contributions[0].source));
  }
  return m;
}

/** Names the first input holding a non-finite value in a chunk (slow path, only on failure). */
async function findNonFinite(pool: FilePool, c: Chunk): Promise<AvgCkptError> {
  for (const { source } of c.tensor.contributions) {
    const d = source.dtype as ReadableFloat;
    const bytes = new Uint8Array(c.count * bytesPerElement(d));
    await readElements(pool, source, c.start, c.count, bytes);
    const values = decode(d, bytes);
    const i = values.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) {
      return new AvgCkptError('non-finite', `holds ${values[i]} at element ${c.start + i}; pass --allow-nonfinite to average it anyway`, { file: source.file, tensor: c.tensor.name });
    }
  }
  return new AvgCkptError('internal', 'the average is not finite but no input is', { tensor: c.tensor.name });
}

/** Marks a promise as handled until it is awaited, so a failure while it runs is not fatal. */
function background(p: Promise<void>): Promise<void> {
  p.catch(() => undefined);
  return p;
}

/** Streams `tensors` (in the writer's layout order) into `writer`. */
export async function streamTensors(pool: FilePool, tensors: readonly PlannedTensor[], writer: Pick<SafetensorsWriter, 'path' | 'write'>, opts: StreamOptions): Promise<void> {
  const maxLen = maxReadLength(tensors);
  const averaged = tensors.filter((t) => t.mode === 'average');
  const accLen = Math.min(CHUNK_ELEMENTS, Math.max(1, ...averaged.map(numel)));
  const worker = wantsWorker(averaged.filter((t) => t.dtype === 'F16' || t.dtype === 'BF16').reduce((a, t) => a + numel(t), 0));
  // Two-stage pipeline with a worker: it encodes chunk k while chunk k+1 is read and accumulated
  // into the other accumulator, then this thread helps finish chunk k, whose write overlaps chunk
  // k+2. Without one, each chunk is encoded as soon as it is summed (still in cache).
  const nAcc = worker ? 2 : 1;
  // The read buffers, the accumulators and the two output buffers live where the SIMD kernels
  // (and, shared, the worker) can see them. We hold at most one read buffer beyond the depth: a
  // copied chunk's, until its write is done.
  const arena = new Arena(8 + accLen * 8 * (nAcc + 2) + (READ_DEPTH + 1) * (Math.ceil(maxLen / 8) * 8), worker);
  const reads = new ReadAhead(pool, allReads(tensors), READ_DEPTH, maxLen, (n) => arena.bytes(n));
  const accs = Array.from({ length: nAcc }, () => arena.f64(accLen));
  const outs = [arena.bytes(accLen * 8), arena.bytes(accLen * 8)];
  const encoder = new ChunkEncoder(arena.buffer, arena.bytes(8).byteOffset, worker);
  let encoded: { c: Chunk; acc: Float64Array; out: Uint8Array } | null = null;
  let writing: Promise<void> = Promise.resolve();
  const progress: StreamProgress = { bytesRead: 0, tensorsDone: 0 };

  /** Waits for the chunk being encoded, checks it, and starts its write. */
  const flush = async (): Promise<void> => {
    if (encoded === null) return;
    const { c, acc, out } = encoded;
    encoded = null;
    const i = await encoder.finish();
    if (i >= 0) {
      // A NaN or Inf input makes the sum non-finite, and a narrower output dtype can overflow
      // even when every input is finite (F32 1e5 -> F16).
      if (!Number.isFinite(acc[i])) throw await findNonFinite(pool, c);
      throw new AvgCkptError('non-finite', `the average is ${acc[i]} at element ${c.start + i}, beyond the range of the output dtype ${c.tensor.dtype}; choose a wider --dtype (f32, bf16) or pass --allow-nonfinite to write infinity`, { file: writer.path, tensor: c.tensor.name });
    }
    await writing;
    writing = background(writer.write(out));
  };

  try {
    let nextAcc = 0;
    let nextOut = 0;
    for (const c of chunks(tensors)) {
      if (c.tensor.mode === 'copy') {
        if (c.count > 0) {
          const bytes = await reads.next();
          await flush();
          await writing;
          writing = background(writer.write(bytes).then(() => reads.release(bytes)));
          progress.bytesRead += bytes.byteLength;
        }
      } else {
        // This accumulator's previous chunk (k-2) was encoded before k-1 went to the encoder.
        const a = accs[nextAcc].subarray(0, c.count);
        a.fill(0);
        for (const { weight, source } of c.tensor.contributions) {
          if (c.count === 0) break;
          const bytes = await reads.next();
          arena.accumulate(source.dtype as ReadableFloat, bytes, a, weight);
          progress.bytesRead += bytes.byteLength;
          reads.release(bytes);
        }
        await flush(); // also awaits chunk k-2's write, from this output buffer
        const dt = c.tensor.dtype as WritableFloat;
        const o = outs[nextOut].subarray(0, c.count * bytesPerElement(dt));
        encoder.start(dt, a, o, !opts.allowNonfinite);
        encoded = { c, acc: a, out: o };
        if (!worker) await flush();
        nextAcc = (nextAcc + 1) % nAcc;
        nextOut ^= 1;
      }
      if (c.last) progress.tensorsDone++;
      opts.onProgress?.(progress);
    }
    await flush();
    await writing;
  } finally {
    await encoder.close(); // the worker may still be encoding after an error: it must not outlive us
    await writing.catch(() => undefined);
    await reads.drain();
  }
}
