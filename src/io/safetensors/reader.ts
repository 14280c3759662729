/** Opens a safetensors file and validates its header without reading the tensor data. */
import { open, stat } from 'node:fs/promises';
import { ioError } from '../../errors.js';
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
    const st = await stat(path);
    if (st.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
    // A FIFO would block open() forever (and keep the process alive past SIGTERM); a device has
    // no size. Only regular files can be read by position.
    if (!st.isFile()) throw new Error('not a regular file (a pipe, socket or device)');
    fileSize = st.size;
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
