/**
 * Reading only regular files. A FIFO would block open() or read() forever, and the blocked
 * thread keeps the process alive even past SIGTERM; a device has no size.
 */
import { readFile, stat } from 'node:fs/promises';

/** Throws (a plain error with a code, for `ioError` to word) unless `path` is a regular file; returns its size. */
export async function regularFileSize(path: string): Promise<number> {
  const st = await stat(path);
  if (st.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
  if (!st.isFile()) throw new Error('not a regular file (a pipe, socket or device)');
  return st.size;
}

/** The whole file, once it is known to be a regular file. */
export async function readRegularFile(path: string): Promise<Buffer> {
  await regularFileSize(path);
  return readFile(path);
}
