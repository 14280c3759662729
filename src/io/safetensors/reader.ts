/** Opens a safetensors file and validates its header without reading the tensor data. */
import { openReader, storageError, type RangedReader } from '../storage/storage.js';
import { parseHeader, parseHeaderSize, type SafetensorsHeader, type TensorEntry } from './header.js';

export interface SafetensorsFile {
  readonly path: string;
  readonly fileSize: number;
  readonly header: SafetensorsHeader;
  /** Absolute file position of a tensor's first byte. */
  position(t: TensorEntry): number;
}

export async function readSafetensorsHeader(path: string): Promise<SafetensorsFile> {
  let reader: RangedReader;
  try {
    reader = await openReader(path);
  } catch (e) {
    throw storageError(path, e, 'open');
  }
  // A failing disk (EIO) is an io error naming the file, not an internal bug.
  const read = async (position: number, length: number): Promise<Uint8Array> => {
    const into = new Uint8Array(length);
    try {
      await reader.read(position, into, length);
    } catch (e) {
      throw storageError(path, e, 'read');
    }
    return into;
  };
  try {
    const fileSize = reader.size;
    const prefix = await read(0, Math.min(8, fileSize));
    const n = parseHeaderSize(prefix, fileSize, path);
    const header = parseHeader(await read(8, n), fileSize, path);
    return { path, fileSize, header, position: (t) => header.dataStart + t.begin };
  } finally {
    await reader.close();
  }
}
