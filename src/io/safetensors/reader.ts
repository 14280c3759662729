/** Opens a safetensors file and validates its header without reading the tensor data. */
import { open } from 'node:fs/promises';
import { ioError } from '../../errors.js';
import { regularFileSize } from '../regular-file.js';
import { parseHeader, parseHeaderSize, type SafetensorsHeader, type TensorEntry } from './header.js';

export interface SafetensorsFile {
  readonly path: string;
  readonly fileSize: number;
  readonly header: SafetensorsHeader;
  /** Absolute file position of a tensor's first byte. */
  position(t: TensorEntry): number;
}

export async function readSafetensorsHeader(path: string): Promise<SafetensorsFile> {
  let fileSize: number;
  try {
    fileSize = await regularFileSize(path);
  } catch (e) {
    throw ioError(path, e, 'open');
  }
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError(path, e, 'open');
  }
  // A failing disk (EIO) is an io error naming the file, not an internal bug.
  const read = async (into: Uint8Array, offset: number, length: number, position: number) => {
    try {
      return (await fh.read(into, offset, length, position)).bytesRead;
    } catch (e) {
      throw ioError(path, e, 'read');
    }
  };
  try {
    const prefix = new Uint8Array(8);
    const bytesRead = await read(prefix, 0, 8, 0);
    const n = parseHeaderSize(prefix.subarray(0, bytesRead), bytesRead < 8 ? bytesRead : fileSize, path);
    const json = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const r = await read(json, done, n - done, 8 + done);
      if (r === 0) break;
      done += r;
    }
    const header = parseHeader(json.subarray(0, done), fileSize, path);
    return { path, fileSize, header, position: (t) => header.dataStart + t.begin };
  } finally {
    await fh.close();
  }
}
