/**
 * The float64 averages of weight slots into callers' buffers: the fed and materialize engines
 * and the baked ONNX all form their averages here, through the merge engine's stream
 * (engine/stream.ts). So a candidate's average is what `merge` would write, byte for byte: read
 * ahead chunk by chunk, summed in float64 in checkpoint order with the SIMD kernels on every
 * core, rounded once to the initializer's element type; here the bytes land in memory (laid out
 * as the initializer: transposed where bound so) instead of a file. Memory: the stream's chunk
 * buffers, sized once for every checkpoint of the series, whatever the model's size.
 */
import { AvgCkptError } from '../errors.js';
import { defaultThreads } from '../engine/compute.js';
import type { PlannedTensor } from '../engine/plan.js';
import { MergeStreams, type StreamTarget } from '../engine/stream.js';
import { dtypeOfOnnx, isReadableFloat, isWritableFloat } from '../io/dtype.js';
import type { FilePool } from '../io/storage/file-pool.js';
import { elementBytes, numel } from '../io/onnx/model.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { WeightSlot } from './engine.js';

/** A slot and the buffer its average goes to (numel x the initializer's element size). */
export interface SlotOutput {
  readonly slot: WeightSlot;
  readonly out: Uint8Array;
}

export class SlotAverager {
  private streams?: MergeStreams;

  /**
   * @param checkpoints every checkpoint a candidate may weigh and `slots` every slot it may
   *   average: the buffers are sized once for all of them
   * @param threads threads the sums may use
   */
  constructor(
    private readonly pool: FilePool,
    private readonly checkpoints: readonly Checkpoint[],
    private readonly slots: readonly WeightSlot[],
    private readonly threads = defaultThreads(),
  ) {}

  /** The slot's tensor to compute: the checkpoint tensor's shape, the initializer's element type. */
  private planned(slot: WeightSlot, parts: readonly { ck: Checkpoint; w: number }[]): PlannedTensor {
    const b = slot.first;
    const dtype = dtypeOfOnnx(b.type);
    if (dtype === undefined || !isWritableFloat(dtype))
      throw new AvgCkptError('internal', `cannot average "${b.initializer}" (ONNX type ${b.type})`);
    const contributions = parts.map(({ ck, w }) => {
      const source = ck.tensors.get(b.source);
      if (source === undefined || !isReadableFloat(source.dtype))
        throw new AvgCkptError('series-mismatch', `checkpoint has no float tensor "${b.source}"`, {
          file: ck.path,
          tensor: b.source,
        });
      return { source, weight: w };
    });
    const shape = contributions[0]?.source.shape ?? b.dims;
    return { name: b.source, dtype, shape, mode: 'average', contributions };
  }

  /** The stream, opened on first use for every slot weighed by every checkpoint (the most any candidate reads). */
  private open(): MergeStreams {
    if (this.streams === undefined) {
      const all = this.checkpoints.map((ck) => ({ ck, w: 1 }));
      this.streams = MergeStreams.open(this.pool, [[this.slots.map((s) => this.planned(s, all))]], this.threads);
    }
    return this.streams;
  }

  /** Writes the weighted average over `parts` of each slot into its buffer, in one pass. */
  async averageAll(outputs: readonly SlotOutput[], parts: readonly { ck: Checkpoint; w: number }[]): Promise<void> {
    if (parts.length === 0) throw new AvgCkptError('internal', 'an average of no checkpoints');
    for (const { slot, out } of outputs) {
      const b = slot.first;
      if (out.byteLength !== numel(b.dims) * elementBytes(b.type))
        throw new AvgCkptError('internal', `cannot average "${b.initializer}" into ${out.byteLength} bytes`);
    }
    const tensors = outputs.map(({ slot }) => this.planned(slot, parts));
    const target: StreamTarget = { tensors, writer: new SlotWriter(outputs) };
    await this.open().stream([target], { allowNonfinite: true });
  }

  /** The average of one slot (see averageAll). */
  average(slot: WeightSlot, parts: readonly { ck: Checkpoint; w: number }[], out: Uint8Array): Promise<void> {
    return this.averageAll([{ slot, out }], parts);
  }

  async close(): Promise<void> {
    await this.streams?.close();
    this.streams = undefined;
  }
}

/**
 * Takes the stream's encoded bytes, tensor after tensor in the order of `outputs`, and puts them
 * where each initializer keeps them: as they come, or transposed (a [rows, cols] checkpoint
 * tensor bound to a [cols, rows] initializer) element by element as bit patterns.
 */
class SlotWriter {
  readonly path = 'memory';
  private index = 0;
  /** Bytes of outputs[index] written so far. */
  private at = 0;

  constructor(private readonly outputs: readonly SlotOutput[]) {}

  async write(bytes: Uint8Array): Promise<void> {
    for (let o = 0; o < bytes.byteLength; ) {
      while (this.at === this.outputs[this.index].out.byteLength) {
        this.index++;
        this.at = 0;
      }
      const { slot, out } = this.outputs[this.index];
      const n = Math.min(bytes.byteLength - o, out.byteLength - this.at);
      const piece = bytes.subarray(o, o + n);
      if (slot.first.transform === 'transpose')
        scatter(piece, out, this.at, slot.first.dims, elementBytes(slot.first.type));
      else out.set(piece, this.at);
      this.at += n;
      o += n;
    }
  }
}

const VIEWS: Record<
  number,
  new (
    b: ArrayBufferLike,
    at: number,
    n: number,
  ) => ArrayLike<number> & { [i: number]: number }
> = { 2: Uint16Array, 4: Uint32Array, 8: Float64Array };

/**
 * Stores elements of a [rows, cols] source, from the one at byte `at` on (in `piece`), at their
 * place in a [cols, rows] initializer `out`; moved as bit patterns (float64 through a
 * Float64Array: only a NaN's payload could change).
 */
function scatter(piece: Uint8Array, out: Uint8Array, at: number, dims: readonly number[], size: number): void {
  const [cols, rows] = dims;
  const View = VIEWS[size];
  // each write is one tensor's chunk, from an 8-byte aligned arena offset: the view is aligned
  const from = new View(piece.buffer, piece.byteOffset, piece.byteLength / size);
  const dst = new View(out.buffer, out.byteOffset, out.byteLength / size);
  const first = at / size;
  let r = Math.floor(first / cols);
  let c = first % cols;
  for (let i = 0; i < from.length; i++) {
    dst[c * rows + r] = from[i];
    if (++c === cols) {
      c = 0;
      r++;
    }
  }
}
