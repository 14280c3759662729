/**
 * Streaming safetensors writer. The header is computed up front from the tensors' dtypes and
 * shapes, then the data is appended in header order, chunk by chunk, so no tensor ever needs to
 * be whole in memory.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { AvgCkptError, ioError } from '../../errors.js';
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
export function layoutSafetensors(tensors: readonly OutputTensor[], metadata: Readonly<Record<string, string>>): SafetensorsLayout {
  const ordered = [...tensors].sort((a, b) => dtypeBits(b.dtype) - dtypeBits(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
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

const COALESCE = 4 << 20;

/** Appends a layout's bytes to a file; `close` checks that exactly the planned bytes came. */
export class SafetensorsWriter {
  private written = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  /** `path` is shown in messages: the output the user asked for, not a temporary name. */
  private constructor(private readonly fh: FileHandle, readonly path: string, readonly layout: SafetensorsLayout) {}

  /**
   * @param path where the bytes go (often a temporary name)
   * @param shownAs the name errors give, by default `path`
   */
  static async create(path: string, layout: SafetensorsLayout, shownAs = path): Promise<SafetensorsWriter> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx');
    } catch (e) {
      throw ioError(shownAs, e, 'create');
    }
    const w = new SafetensorsWriter(fh, shownAs, layout);
    await w.write(layout.headerBytes);
    return w;
  }

  /** Appends bytes (copied if they are kept for coalescing, so callers may reuse the buffer). */
  async write(bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength >= COALESCE) {
      await this.flush();
      await this.writeOut(bytes);
      return;
    }
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.byteLength;
    if (this.pendingBytes >= COALESCE) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const all = new Uint8Array(this.pendingBytes);
    let o = 0;
    for (const p of this.pending) {
      all.set(p, o);
      o += p.byteLength;
    }
    this.pending = [];
    this.pendingBytes = 0;
    await this.writeOut(all);
  }

  private async writeOut(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      try {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.byteLength - done, this.written);
        done += bytesWritten;
        this.written += bytesWritten;
      } catch (e) {
        throw ioError(this.path, e, 'write');
      }
    }
  }

  /** Flushes, checks the size, fsyncs and closes. */
  async close(): Promise<void> {
    try {
      await this.flush();
      if (this.written !== this.layout.fileSize) {
        throw new AvgCkptError('internal', `wrote ${this.written} bytes, planned ${this.layout.fileSize}`, { file: this.path });
      }
      try {
        await this.fh.sync();
      } catch (e) {
        throw ioError(this.path, e, 'flush to disk');
      }
    } finally {
      await this.fh.close().catch(() => undefined);
    }
  }

  /** Closes without checks (the caller is abandoning the file). */
  async discard(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
