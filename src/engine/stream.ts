/**
 * The streaming core: for each tensor, chunk by chunk, read the chunk from every checkpoint
 * that an output weighs (each once, however many outputs weigh it), accumulate in float64 for
 * each output, cast once to the output dtype, write, move on. The arithmetic of a chunk runs on
 * every thread the merge may use (compute.ts), while the next chunk is read and the previous
 * one written. Memory is a few chunk buffers per input and per output, whatever the model size.
 */
import { AvgCkptError } from '../errors.js';
import { readElements } from '../io/formats/read-elements.js';
import { elementBytes, numelOf, type TensorSource } from '../io/formats/tensor-source.js';
import type { FilePool } from '../io/storage/file-pool.js';
import { bytesPerElement, type ReadableFloat, type WritableFloat } from '../io/dtype.js';
import { decode, firstNonFinite } from '../io/float-codec.js';
import type { SafetensorsWriter } from '../io/safetensors/writer.js';
import type { PlannedTensor } from './plan.js';
import { BLOCK, ChunkComputer, threadsFor, type ChunkJob } from './compute.js';
import { Arena } from './kernels.js';
import { ReadAhead, type ReadJob } from './read-ahead.js';

/** Elements per chunk at most: 16 MiB of float64 accumulator per output. */
export const CHUNK_ELEMENTS = 2 << 20;
/**
 * Bytes of one chunk of all the inputs of a tensor together: the chunk shrinks as inputs are
 * added (at least one block), so that two chunks' reads in flight stay within ~2x this.
 */
const CHUNK_READ_BYTES = 24 << 20;
/** Integer tensors are copied in chunks of (at most) this many bytes when nothing is averaged. */
const COPY_BYTES = 16 << 20;
/**
 * Reads in flight: one per input (the next chunk's reads while this one is summed), at least 4,
 * at most 32 (far more than libuv runs at once, and well under the file pool's open handles).
 */
const READ_DEPTH_MIN = 4;
const READ_DEPTH_MAX = 32;

export interface StreamProgress {
  bytesRead: number;
  tensorsDone: number;
}

export interface StreamOptions {
  allowNonfinite: boolean;
  onProgress?: (p: StreamProgress) => void;
}

/** One output file being written: its tensors in its writer's layout order. */
export interface StreamTarget {
  readonly tensors: readonly PlannedTensor[];
  readonly writer: Pick<SafetensorsWriter, 'path' | 'write'>;
}

/**
 * One tensor of every target (the same name, mode, shape and output dtype: the outputs differ
 * only in their weights and, for copied tensors, which checkpoint they copy). Each source is
 * read once; `terms[m]` says which sources output m adds, with which weights, in its order.
 */
interface TensorWork {
  readonly name: string;
  readonly mode: 'average' | 'copy';
  readonly dtype: WritableFloat;
  readonly numel: number;
  readonly sources: readonly TensorSource[];
  /** Average: [source index, weight] per output. Copy: the one source index per output. */
  readonly terms: ReadonlyArray<ReadonlyArray<readonly [number, number]>>;
}

function tensorWork(group: readonly PlannedTensor[]): TensorWork {
  const first = group[0];
  for (const t of group) {
    if (
      t.name !== first.name ||
      t.mode !== first.mode ||
      t.dtype !== first.dtype ||
      t.shape.join() !== first.shape.join()
    ) {
      throw new AvgCkptError('internal', `the outputs' layouts differ at ${first.name} / ${t.name}`);
    }
  }
  const sources: TensorSource[] = [];
  const indexOf = (s: TensorSource): number => {
    const i = sources.indexOf(s);
    return i >= 0 ? i : sources.push(s) - 1;
  };
  const terms = group.map((t) => t.contributions.map((c) => [indexOf(c.source), c.weight] as const));
  return {
    name: first.name,
    mode: first.mode,
    dtype: first.dtype as WritableFloat,
    numel: numelOf(first.shape),
    sources,
    terms,
  };
}

/** The tensors of several targets, position by position. */
function worksOf(targets: readonly (readonly PlannedTensor[])[]): TensorWork[] {
  const n = targets[0].length;
  if (targets.some((t) => t.length !== n))
    throw new AvgCkptError('internal', 'the outputs hold different numbers of tensors');
  return Array.from({ length: n }, (_, j) => tensorWork(targets.map((t) => t[j])));
}

interface Chunk {
  readonly work: TensorWork;
  /** First element of the chunk. */
  readonly start: number;
  readonly count: number;
  readonly last: boolean;
}

/**
 * The sizes every file of a merge shares, so that one arena and one set of threads serve them
 * all: `chunk` elements per averaged chunk, `copyBytes` per copied chunk.
 */
interface Sizing {
  readonly chunk: number;
  readonly copyBytes: number;
  /** The largest read, in bytes. */
  readonly readBytes: number;
  /** Sources of one tensor, at most (average; copy). */
  readonly sources: number;
  readonly copySources: number;
  /** Bytes per output element, at most. */
  readonly outBytes: number;
  /** Element additions in all: the work the threads share. */
  readonly additions: number;
}

function sizing(works: readonly TensorWork[]): Sizing {
  const averaged = works.filter((w) => w.mode === 'average');
  const sources = Math.max(1, ...averaged.map((w) => w.sources.length));
  const inBytes = Math.max(1, ...averaged.flatMap((w) => w.sources.map(elementBytes)));
  const largest = Math.max(8, ...averaged.map((w) => Math.ceil(w.numel / 8) * 8));
  const byBudget = Math.max(BLOCK, Math.floor(CHUNK_READ_BYTES / (sources * inBytes) / BLOCK) * BLOCK);
  const chunk = Math.min(CHUNK_ELEMENTS, byBudget, largest);
  const copyBytes = averaged.length > 0 ? chunk * inBytes : COPY_BYTES;
  let readBytes = 8;
  for (const w of works)
    readBytes = Math.max(
      readBytes,
      ...w.sources.map((s) => Math.min(chunkElements(w, chunk, copyBytes), w.numel) * elementBytes(s)),
    );
  return {
    chunk,
    copyBytes,
    readBytes: Math.ceil(readBytes / 8) * 8,
    sources,
    copySources: Math.max(0, ...works.filter((w) => w.mode === 'copy').map((w) => w.sources.length)),
    outBytes: Math.max(1, ...averaged.map((w) => bytesPerElement(w.dtype))),
    additions: averaged.reduce((a, w) => a + w.numel * w.terms.reduce((b, t) => b + t.length, 0), 0),
  };
}

function chunkElements(w: TensorWork, chunk: number, copyBytes: number): number {
  return w.mode === 'average' ? chunk : Math.max(1, Math.floor(copyBytes / elementBytes(w.sources[0])));
}

function* chunksOf(works: readonly TensorWork[], size: Sizing): Generator<Chunk> {
  for (const work of works) {
    const step = chunkElements(work, size.chunk, size.copyBytes);
    if (work.numel === 0) {
      yield { work, start: 0, count: 0, last: true };
      continue;
    }
    for (let start = 0; start < work.numel; start += step) {
      yield { work, start, count: Math.min(step, work.numel - start), last: start + step >= work.numel };
    }
  }
}

/** The reads of a chunk, one per source (an empty tensor reads nothing, and queues no empty reads). */
function readsOf(c: Chunk): ReadJob[] {
  return c.count === 0 ? [] : c.work.sources.map((source) => ({ source, start: c.start, count: c.count }));
}

function* allReads(works: readonly TensorWork[], size: Sizing): Generator<ReadJob> {
  for (const c of chunksOf(works, size)) yield* readsOf(c);
}

/** Names the first input of output `m` holding a non-finite value in a chunk (slow path, only on failure). */
async function findNonFinite(pool: FilePool, c: Chunk, m: number): Promise<AvgCkptError> {
  for (const [i] of c.work.terms[m]) {
    const source = c.work.sources[i];
    const d = source.dtype as ReadableFloat;
    const bytes = new Uint8Array(c.count * bytesPerElement(d));
    await readElements(pool, source, c.start, c.count, bytes);
    const values = decode(d, bytes);
    const k = values.findIndex((v) => !Number.isFinite(v));
    if (k >= 0) {
      return new AvgCkptError(
        'non-finite',
        `holds ${values[k]} at element ${c.start + k}; pass --allow-nonfinite to average it anyway`,
        { file: source.file, tensor: c.work.name },
      );
    }
  }
  return new AvgCkptError('internal', 'the average is not finite but no input is', { tensor: c.work.name });
}

/** Marks a promise as handled until it is awaited, so a failure while it runs is not fatal. */
function background(p: Promise<void>): Promise<void> {
  p.catch(() => undefined);
  return p;
}

/**
 * The buffers and threads of one merge, shared by its files: open it with every target's
 * tensors of every file (`files[f][m]`: file f of output m), stream each file's targets, close.
 */
export class MergeStreams {
  private readonly arena: Arena;
  private readonly computer: ChunkComputer;
  private readonly counter: number;
  private readonly accs: Float64Array[];
  /** outs[m][0 | 1]: output m's two encode buffers (one being written while the other is filled). */
  private readonly outs: Uint8Array[][];
  private readonly readBuffers: Uint8Array[];
  private readonly depth: number;
  readonly threads: number;

  private constructor(
    private readonly pool: FilePool,
    private readonly size: Sizing,
    outputs: number,
    threads: number,
  ) {
    this.threads = threadsFor(threads, size.additions);
    // Every read has its own buffer: a chunk's reads being summed, up to `depth` more in flight,
    // and the buffers of a copied chunk until its writes are done.
    this.depth = Math.min(READ_DEPTH_MAX, Math.max(READ_DEPTH_MIN, size.sources));
    const nRead = size.sources + this.depth + size.copySources;
    const bytes = 8 + outputs * size.chunk * (8 + 2 * size.outBytes) + nRead * size.readBytes + 8 * (2 * outputs + 1);
    this.arena = new Arena(bytes, this.threads > 1);
    this.counter = this.arena.bytes(8).byteOffset;
    this.accs = Array.from({ length: outputs }, () => this.arena.f64(size.chunk));
    this.outs = Array.from({ length: outputs }, () => [
      this.arena.bytes(size.chunk * size.outBytes),
      this.arena.bytes(size.chunk * size.outBytes),
    ]);
    this.readBuffers = Array.from({ length: nRead }, () => this.arena.bytes(size.readBytes));
    this.computer = new ChunkComputer(this.arena.memory, this.threads);
  }

  /** @param threads threads allowed (fewer are used for small merges, and one under vitest) */
  static open(
    pool: FilePool,
    files: readonly (readonly (readonly PlannedTensor[])[])[],
    threads: number,
  ): MergeStreams {
    const works = files.flatMap((targets) => worksOf(targets));
    return new MergeStreams(pool, sizing(works), files[0]?.length ?? 1, threads);
  }

  async close(): Promise<void> {
    await this.computer.close(); // a worker may still be computing after an error: it must not outlive us
  }

  /** Streams one file of each output: `targets[m]` (the same tensors, in the same order). */
  async stream(targets: readonly StreamTarget[], opts: StreamOptions): Promise<void> {
    const works = worksOf(targets.map((t) => t.tensors));
    const reads = new ReadAhead(this.pool, allReads(works, this.size), this.depth, this.readBuffers);
    const writing: Array<Promise<void>> = targets.map(() => Promise.resolve());
    const progress: StreamProgress = { bytesRead: 0, tensorsDone: 0 };
    let flip = 0;
    try {
      for (const c of chunksOf(works, this.size)) {
        if (c.count > 0) {
          const bytes: Uint8Array[] = [];
          for (let i = 0; i < c.work.sources.length; i++) bytes.push(await reads.next());
          progress.bytesRead += bytes.reduce((a, b) => a + b.byteLength, 0);
          if (c.work.mode === 'copy') {
            await Promise.all(writing);
            targets.forEach((t, m) => (writing[m] = background(t.writer.write(bytes[c.work.terms[m][0][0]]))));
            void Promise.allSettled(writing).then(() => bytes.forEach((b) => reads.release(b)));
          } else {
            const outs = await this.compute(c, bytes, flip, opts, reads, targets);
            await Promise.all(writing); // the writes of the previous chunk, from the other buffers
            targets.forEach((t, m) => (writing[m] = background(t.writer.write(outs[m]))));
            flip ^= 1;
          }
        }
        if (c.last) progress.tensorsDone++;
        opts.onProgress?.(progress);
      }
      await Promise.all(writing);
    } finally {
      await Promise.allSettled(writing);
      await reads.drain();
    }
  }

  /** Sums and encodes an averaged chunk into each output's buffer `flip`, and checks it. */
  private async compute(
    c: Chunk,
    bytes: Uint8Array[],
    flip: number,
    opts: StreamOptions,
    reads: ReadAhead,
    targets: readonly StreamTarget[],
  ): Promise<Uint8Array[]> {
    const size = bytesPerElement(c.work.dtype);
    const outs = this.outs.map((o) => o[flip].subarray(0, c.count * size));
    const job: ChunkJob = {
      n: c.count,
      counter: this.counter,
      inputs: bytes.map((b, i) => ({ offset: b.byteOffset, dtype: c.work.sources[i].dtype as ReadableFloat })),
      outputs: c.work.terms.map((terms, m) => ({
        acc: this.accs[m].byteOffset,
        out: outs[m].byteOffset,
        dt: c.work.dtype,
        terms,
      })),
      check: !opts.allowNonfinite,
    };
    let nonFinite: boolean[];
    try {
      nonFinite = await this.computer.run(job);
    } finally {
      for (const b of bytes) reads.release(b);
    }
    for (let m = 0; m < nonFinite.length; m++) {
      if (!nonFinite[m]) continue;
      const i = firstNonFinite(c.work.dtype, outs[m]);
      const acc = this.accs[m];
      // A NaN or Inf input makes the sum non-finite, and a narrower output dtype can overflow
      // even when every input is finite (F32 1e5 -> F16).
      if (!Number.isFinite(acc[i])) throw await findNonFinite(this.pool, c, m);
      throw new AvgCkptError(
        'non-finite',
        `the average is ${acc[i]} at element ${c.start + i}, beyond the range of the output dtype ${c.work.dtype}; ` +
          'choose a wider --dtype (f32, bf16) or pass --allow-nonfinite to write infinity',
        { file: targets[m].writer.path, tensor: c.work.name },
      );
    }
    return outs;
  }
}
