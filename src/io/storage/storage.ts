/**
 * The one place that touches the bytes of users' files. Each function hands the path to the
 * first backend that serves it; the local file system serves every path no other claims.
 * An object-storage backend is added by putting it before `localStorage` in BACKENDS.
 */
import { AvgCkptError, ioError } from '../../errors.js';
import type { DirEntry, PathInfo, RangedReader, StorageBackend } from './backend.js';
import { localStorage } from './local.js';
import { s3Backend } from './s3-backend.js';

const BACKENDS: readonly StorageBackend[] = [s3Backend, localStorage];

function backendFor(path: string): StorageBackend {
  return BACKENDS.find((b) => b.handles(path)) ?? localStorage;
}

export function statPath(path: string): Promise<PathInfo> {
  return backendFor(path).statPath(path);
}

/** The kind of what is at `path`, or undefined when nothing is there (or it cannot be seen). */
export async function kindOf(path: string): Promise<PathInfo['kind'] | undefined> {
  return statPath(path).then(
    (i) => i.kind,
    () => undefined,
  );
}

export function listDir(path: string): Promise<DirEntry[]> {
  return backendFor(path).listDir(path);
}

export function readWhole(path: string): Promise<Uint8Array> {
  return backendFor(path).readWhole(path);
}

export function openReader(path: string): Promise<RangedReader> {
  return backendFor(path).openReader(path);
}

/** A storage failure as the tool's error: our own errors pass through, others are worded by `ioError`. */
export function storageError(path: string, e: unknown, doing: string): AvgCkptError {
  return e instanceof AvgCkptError ? e : ioError(path, e, doing);
}

export type { DirEntry, PathInfo, PathKind, RangedReader } from './backend.js';
