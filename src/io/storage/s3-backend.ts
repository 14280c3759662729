/**
 * `s3://` paths behind the storage functions. The AWS SDK is loaded on the first S3 path, so
 * runs that never name one do not pay for importing it.
 */
import type { DirEntry, PathInfo, RangedReader, StorageBackend } from './backend.js';
import { isS3Path, parseS3Path } from './s3-location.js';

async function store() {
  const { s3Store } = await import('./s3.js');
  return s3Store();
}

/** Nothing at the path: worded by `ioError` like a missing local file. */
function notFound(): Error {
  return Object.assign(new Error('no such file or folder'), { code: 'ENOENT' });
}

export const s3Backend: StorageBackend = {
  handles: isS3Path,

  async statPath(path: string): Promise<PathInfo> {
    const st = await (await store()).stat(path);
    if (st === undefined) throw notFound();
    if (st.kind === 'dir') return { kind: 'dir', size: 0 };
    return { kind: 'file', size: st.size, ...(st.etag === undefined ? {} : { version: `etag ${st.etag}` }) };
  },

  async listDir(path: string): Promise<DirEntry[]> {
    const s = await store();
    if ((await s.stat(path)) === undefined) throw notFound();
    return (await s.list(path)).map((e) => ({ name: e.name, kind: e.kind }));
  },

  async readWhole(path: string): Promise<Uint8Array> {
    return (await store()).readWhole(path);
  },

  async openReader(path: string): Promise<RangedReader> {
    const s = await store();
    const { size } = await s.open(path);
    return {
      size,
      read: (position, into, length) => s.read(path, position, into, length),
      close: async () => undefined,
    };
  },
};

/**
 * The objects and folders a glob such as `s3://bucket/run/checkpoint-*` matches: every key
 * below the pattern's literal prefix is listed, and it and its parent folders are matched
 * (fast-glob's syntax, through its own matcher, picomatch).
 */
export async function globS3(pattern: string): Promise<string[]> {
  const { bucket, key } = parseS3Path(pattern);
  const picomatch = (await import('picomatch')).default;
  const isMatch = picomatch(key, { dot: false });
  const literal = key.slice(0, key.search(/[*?[\]{}()!+@]/) === -1 ? key.length : key.search(/[*?[\]{}()!+@]/));
  const prefix = literal.slice(0, literal.lastIndexOf('/') + 1);
  const found = new Set<string>();
  for (const { key: k } of await (await store()).listKeys(bucket, prefix)) {
    for (let end = k.length; end > prefix.length; end = k.lastIndexOf('/', end - 1)) {
      const candidate = k.slice(0, end);
      if (isMatch(candidate)) found.add(`s3://${bucket}/${candidate}`);
    }
  }
  return [...found].sort();
}
