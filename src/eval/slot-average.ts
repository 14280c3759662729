/**
 * The float64 average of one weight slot, chunk by chunk, into a caller's buffer: the fed and
 * materialize engines and the baked ONNX all form their averages here. A chunk of the source
 * (whole rows, for a transposed binding) is accumulated in float64 with the merge engine's SIMD
 * kernels, rounded once to the initializer's element type and stored where the initializer
 * layout puts it. Memory: one chunk, whatever the tensor's size.
 */
import { AvgCkptError } from '../errors.js';
import { Arena } from '../engine/kernels.js';
import { readElements } from '../io/formats/read-elements.js';
import { elementBytes as sourceBytes } from '../io/formats/tensor-source.js';
import type { FilePool } from '../io/storage/file-pool.js';
import { dtypeOfOnnx, isReadableFloat, isWritableFloat } from '../io/dtype.js';
import { encode } from '../io/float-codec.js';
import { elementBytes, numel } from '../io/onnx/model.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { WeightSlot } from './engine.js';

/** Elements per chunk: 8 MiB of float64, small next to a model and large enough for sequential reads. */
const CHUNK = 1 << 20;

export class SlotAverager {
  private arena?: { arena: Arena; acc: Float64Array; read: Uint8Array; out: Uint8Array; elements: number };

  constructor(private readonly pool: FilePool) {}

  /** Room for `elements` per chunk; grown (replaced) only for a row wider than the default chunk. */
  private buffers(elements: number) {
    if (this.arena === undefined || this.arena.elements < elements) {
      const arena = new Arena(elements * (8 + 8 + 8) + 64);
      this.arena = {
        arena,
        acc: arena.f64(elements),
        read: arena.bytes(elements * 8),
        out: arena.bytes(elements * 8),
        elements,
      };
    }
    return this.arena;
  }

  /**
   * Writes the weighted average of `slot` over `parts` into `out` (numel x the initializer's
   * element size, laid out as the initializer: transposed where bound so).
   */
  async average(slot: WeightSlot, parts: readonly { ck: Checkpoint; w: number }[], out: Uint8Array): Promise<void> {
    const b = slot.first;
    const n = numel(b.dims);
    const size = elementBytes(b.type);
    const dtype = dtypeOfOnnx(b.type);
    if (dtype === undefined || !isWritableFloat(dtype) || out.byteLength !== n * size)
      throw new AvgCkptError('internal', `cannot average "${b.initializer}" into ${out.byteLength} bytes`);
    const sources = parts.map(({ ck, w }) => {
      const src = ck.tensors.get(b.source);
      if (src === undefined || !isReadableFloat(src.dtype))
        throw new AvgCkptError('series-mismatch', `checkpoint has no float tensor "${b.source}"`, {
          file: ck.path,
          tensor: b.source,
        });
      return { src, dtype: src.dtype, w };
    });
    // a transposed binding: the checkpoint tensor is [rows, cols], the initializer [cols, rows]
    const transpose = b.transform === 'transpose';
    const [cols, rows] = b.dims;
    const step = transpose ? Math.max(1, Math.floor(CHUNK / cols)) * cols : CHUNK;
    const { arena, acc, read, out: encoded } = this.buffers(Math.min(n, step));
    for (let start = 0; start < n; start += step) {
      const len = Math.min(step, n - start);
      const a = acc.subarray(0, len);
      a.fill(0);
      for (const { src, dtype: d, w } of sources) {
        const bytes = read.subarray(0, len * sourceBytes(src));
        await readElements(this.pool, src, start, len, bytes);
        arena.accumulate(d, bytes, a, w);
      }
      const chunk = encoded.subarray(0, len * size);
      encode(dtype, a, chunk);
      if (transpose) scatterRows(chunk, out, size, start / cols, cols, rows);
      else out.set(chunk, start * size);
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
 * Stores source rows `r0..` (each `cols` elements of `size` bytes, in `chunk`) as columns `r0..`
 * of a `[cols, rows]` initializer in `out`, moved as bit patterns (float64 through a Float64Array:
 * only a NaN's payload could change).
 */
function scatterRows(chunk: Uint8Array, out: Uint8Array, size: number, r0: number, cols: number, rows: number): void {
  const View = VIEWS[size];
  const src = new View(chunk.buffer, chunk.byteOffset, chunk.byteLength / size);
  const dst = new View(out.buffer, out.byteOffset, out.byteLength / size);
  const count = chunk.byteLength / size / cols;
  for (let r = 0; r < count; r++) {
    for (let c = 0; c < cols; c++) dst[c * rows + r0 + r] = src[r * cols + c];
  }
}
