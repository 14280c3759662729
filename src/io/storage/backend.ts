/**
 * What a storage backend offers: the few operations avg-ckpt performs on users' files. The
 * local file system is one backend; object storage (`s3://bucket/key`) can be another, chosen
 * by path prefix in storage.ts, so no caller knows where the bytes live.
 */

export type PathKind = 'file' | 'dir' | 'other';

export interface PathInfo {
  readonly kind: PathKind;
  /** Bytes, for a file. */
  readonly size: number;
  /**
   * What changes when a file is rewritten, even with the same size: its modification time on a
   * file system, its ETag in object storage. Absent for folders.
   */
  readonly version?: string;
}

export interface DirEntry {
  readonly name: string;
  /** 'other' covers symbolic links (as listed, not followed), pipes, sockets and devices. */
  readonly kind: PathKind;
}

/** Positional reads of one file. */
export interface RangedReader {
  readonly size: number;
  /**
   * Reads exactly `length` bytes at `position` into `into` (from its start). A file that ends
   * first is an `io` AvgCkptError (truncated or replaced while read); other failures are thrown
   * as the backend's errors, for `ioError` to word.
   */
  read(position: number, into: Uint8Array, length?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Failures are thrown as Node.js-style errors (with `code` such as ENOENT, EISDIR) that the
 * caller words with `ioError` for what it was doing.
 */
export interface StorageBackend {
  /** True when this backend serves `path` (e.g. by its prefix). */
  handles(path: string): boolean;
  statPath(path: string): Promise<PathInfo>;
  listDir(path: string): Promise<DirEntry[]>;
  /** A whole regular file (small files only: indexes, JSON, validation arrays). */
  readWhole(path: string): Promise<Uint8Array>;
  /** A reader over a regular file. */
  openReader(path: string): Promise<RangedReader>;
}
