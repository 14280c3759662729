/**
 * Writes into a file at positions the caller chooses, each write completed whole (a positional
 * write may write less than asked). Pieces of zeros written into a region never written before
 * are skipped: they read back as zeros anyway, as a hole that costs no disk, so a model whose
 * weights are mostly zeros (or padding between aligned tensors) stays small on disk.
 */
import type { FileHandle } from 'node:fs/promises';
import { ioError } from '../errors.js';

const ZERO = new Uint8Array(1 << 20);

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.byteLength; i += ZERO.byteLength) {
    const part = bytes.subarray(i, i + ZERO.byteLength);
    if (!Buffer.from(part.buffer, part.byteOffset, part.byteLength).equals(ZERO.subarray(0, part.byteLength)))
      return false;
  }
  return true;
}

export class PositionalWriter {
  /** Where the next `write` goes (each write moves it past its bytes). */
  at = 0;

  constructor(
    private readonly fh: FileHandle,
    /** The file as the user knows it, for messages. */
    private readonly file: string,
    /** What the writes are for, for messages: `write the ONNX model`. */
    private readonly doing: string,
  ) {}

  /**
   * Writes `bytes` at `at`. `fresh`: the region was never written since the file was created,
   * so zeros need not be written (pass false when rewriting a region).
   */
  async write(bytes: Uint8Array, fresh = true): Promise<void> {
    if (!(fresh && isZero(bytes))) {
      try {
        for (let done = 0; done < bytes.byteLength; )
          done += (await this.fh.write(bytes, done, bytes.byteLength - done, this.at + done)).bytesWritten;
      } catch (e) {
        throw ioError(this.file, e, this.doing);
      }
    }
    this.at += bytes.byteLength;
  }

  /** Sets the file's length to `length` (zeros skipped at its end are then part of it) and flushes it to the disk. */
  async finish(length: number): Promise<void> {
    try {
      await this.fh.truncate(length);
      await this.fh.sync();
    } catch (e) {
      throw ioError(this.file, e, this.doing);
    }
  }
}
