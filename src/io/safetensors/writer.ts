/**
 * Streaming safetensors writer. The header is computed up front from the tensors' dtypes and
 * shapes, then the data is appended in header order, chunk by chunk, so no tensor ever needs to
 * be whole in memory.
 */
import { AvgCkptError } from '../../errors.js';
import { AppendFile } from '../append-file.js';
import type { ByteSink } from '../storage/output.js';
import { type DType, dtypeBits } from '../dtype.js';

export interface OutputTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface PlacedTensor extends OutputTensor {
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsLayout {
  /** The 8-byte length prefix followed by the space-padded JSON header. */
  readonly headerBytes: Uint8Array;
  /** Tensors in file order. */
  readonly tensors: readonly PlacedTensor[];
  /** Total file size in bytes. */
  readonly fileSize: number;
}

export function byteLengthOf(t: OutputTensor): number {
  return (t.shape.reduce((a, b) => a * b, 1) * dtypeBits(t.dtype)) / 8;
}

/** Same order as the reference writer: larger dtype alignment first, then by name. */
export function layoutSafetensors(
  tensors: readonly OutputTensor[],
  metadata: Readonly<Record<string, string>>,
): SafetensorsLayout {
  const ordered = [...tensors].sort(
    (a, b) => dtypeBits(b.dtype) - dtypeBits(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const placed: PlacedTensor[] = [];
  let offset = 0;
  // No prototype: a tensor named `__proto__` must become a key, not replace the prototype.
  const json = Object.create(null) as Record<string, unknown>;
  if (Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  for (const t of ordered) {
    const end = offset + byteLengthOf(t);
    placed.push({ ...t, begin: offset, end });
    json[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  let text = JSON.stringify(json);
  const raw = new TextEncoder().encode(text);
  const padded = Math.ceil(raw.byteLength / 8) * 8;
  text += ' '.repeat(padded - raw.byteLength);
  const headerBytes = new Uint8Array(8 + padded);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(padded), true);
  headerBytes.set(new TextEncoder().encode(text), 8);
  return { headerBytes, tensors: placed, fileSize: headerBytes.byteLength + offset };
}

/** Appends a layout's bytes to a file; `close` checks that exactly the planned bytes came. */
export class SafetensorsWriter {
  /** `path` is shown in messages: the output the user asked for, not a temporary name. */
  private constructor(
    private readonly out: AppendFile,
    readonly path: string,
    readonly layout: SafetensorsLayout,
  ) {}

  /**
   * @param path where the bytes go (often a temporary name)
   * @param shownAs the name errors give, by default `path`
   */
  static async create(path: string, layout: SafetensorsLayout, shownAs = path): Promise<SafetensorsWriter> {
    return SafetensorsWriter.start(await AppendFile.create(path, shownAs), layout, shownAs);
  }

  /** Starts writing `layout` into a file of an output (local or in object storage). */
  static async into(sink: ByteSink, layout: SafetensorsLayout, shownAs: string): Promise<SafetensorsWriter> {
    return SafetensorsWriter.start(AppendFile.over(sink, shownAs), layout, shownAs);
  }

  private static async start(out: AppendFile, layout: SafetensorsLayout, shownAs: string): Promise<SafetensorsWriter> {
    const w = new SafetensorsWriter(out, shownAs, layout);
    await w.write(layout.headerBytes);
    return w;
  }

  /** Appends bytes (copied if they are kept for coalescing, so callers may reuse the buffer). */
  async write(bytes: Uint8Array): Promise<void> {
    await this.out.append(bytes);
  }

  /** Flushes, checks the size, fsyncs and closes. */
  async close(): Promise<void> {
    if (this.out.size !== this.layout.fileSize) {
      await this.out.discard();
      throw new AvgCkptError('internal', `wrote ${this.out.size} bytes, planned ${this.layout.fileSize}`, {
        file: this.path,
      });
    }
    await this.out.close();
  }

  /** Closes without checks (the caller is abandoning the file). */
  async discard(): Promise<void> {
    await this.out.discard();
  }
}
