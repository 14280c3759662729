/**
 * Path arithmetic that works for local paths and `s3://bucket/key` alike: node:path's `join`
 * and `resolve` would collapse the scheme's '//' or prepend the working folder.
 */
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { isS3Path, joinS3Path } from './s3-location.js';

export function joinPath(dir: string, name: string): string {
  return isS3Path(dir) ? joinS3Path(dir, name) : join(dir, name);
}

/** The folder a file is in (for an object: the key up to its last '/'). */
export function folderOf(path: string): string {
  return isS3Path(path) ? path.slice(0, path.lastIndexOf('/')) : dirname(resolve(path));
}

/**
 * `dir` joined with the relative name `rel`, or undefined when `rel` is absolute or leaves
 * `dir` (a shard name in an index must not point elsewhere).
 */
export function childInside(dir: string, rel: string): string | undefined {
  if (isAbsolute(rel) || isS3Path(rel)) return undefined;
  if (isS3Path(dir)) {
    const parts = rel.split('/');
    return parts.some((p) => p === '..' || p === '.' || p === '') ? undefined : joinS3Path(dir, rel);
  }
  const root = resolve(dir);
  const inside = relative(root, resolve(root, rel));
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside) || inside.split(sep).includes('..'))
    return undefined;
  return join(dir, inside);
}
