/**
 * `s3://bucket/key` paths. Kept apart from the S3 client so that deciding whether a path is in
 * object storage never loads the AWS SDK (it takes a noticeable part of a second to import).
 */
import { AvgCkptError } from '../../errors.js';

export interface S3Location {
  readonly bucket: string;
  /** The object key, or a prefix ('' for the bucket's root); never starts with '/'. */
  readonly key: string;
}

const SCHEME = 's3://';

export function isS3Path(p: string): boolean {
  return p.startsWith(SCHEME);
}

/** Splits `s3://bucket/key`; a bucket name follows S3's rules (3-63 of a-z 0-9 . -). */
export function parseS3Path(p: string): S3Location {
  if (!isS3Path(p)) throw new AvgCkptError('internal', `not an s3:// path: ${p}`);
  const rest = p.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? '' : rest.slice(slash + 1);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new AvgCkptError('usage', 'is not an S3 path of the form s3://bucket/key (bucket: 3-63 of a-z 0-9 . -)', {
      file: p,
    });
  }
  return { bucket, key };
}

export function formatS3Path(loc: S3Location): string {
  return `${SCHEME}${loc.bucket}/${loc.key}`;
}

/** `s3://b/a` + `x` -> `s3://b/a/x` (path.join would collapse the scheme's '//'). */
export function joinS3Path(base: string, name: string): string {
  return base.endsWith('/') ? `${base}${name}` : `${base}/${name}`;
}

/** The key prefix that lists a "folder": the key with exactly one trailing '/' ('' at the root). */
export function folderPrefix(key: string): string {
  if (key === '') return '';
  return key.endsWith('/') ? key : `${key}/`;
}
