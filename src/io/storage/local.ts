/**
 * The local file system. Only regular files are opened: a FIFO would block open() or read()
 * forever (and the blocked thread keeps the process alive even past SIGTERM); a device has no
 * size.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { AvgCkptError } from '../../errors.js';
import type { DirEntry, PathInfo, RangedReader, StorageBackend } from './backend.js';

/** Throws (a plain error with a code, for `ioError` to word) unless `path` is a regular file; returns its size. */
async function regularFileSize(path: string): Promise<number> {
  const st = await stat(path);
  if (st.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
  if (!st.isFile()) throw new Error('not a regular file (a pipe, socket or device)');
  return st.size;
}

export const localStorage: StorageBackend = {
  handles: () => true,

  async statPath(path: string): Promise<PathInfo> {
    const st = await stat(path, { bigint: true });
    const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    return { kind, size: Number(st.size), ...(kind === 'file' ? { version: `mtime ${st.mtimeNs}` } : {}) };
  },

  async listDir(path: string): Promise<DirEntry[]> {
    const entries = await readdir(path, { withFileTypes: true });
    return entries.map((e) => ({ name: e.name, kind: e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other' }));
  },

  async readWhole(path: string): Promise<Uint8Array> {
    await regularFileSize(path);
    return readFile(path);
  },

  async openReader(path: string): Promise<RangedReader> {
    const size = await regularFileSize(path);
    const fh = await open(path, 'r');
    return {
      size,
      async read(position, into, length = into.byteLength) {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(into, done, length - done, position + done);
          if (bytesRead === 0) {
            throw new AvgCkptError(
              'io',
              `file ended at byte ${position + done} while reading ${length} bytes at ${position}: it was truncated or replaced while avg-ckpt read it`,
              { file: path },
            );
          }
          done += bytesRead;
        }
      },
      close: () => fh.close(),
    };
  },
};
