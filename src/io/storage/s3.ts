/**
 * Reading checkpoints from S3 and S3-compatible stores (MinIO, GCS interoperability, Ceph):
 * the client comes from the usual AWS chain (environment, profile, SSO, instance or pod
 * role); an endpoint (`--s3-endpoint`, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL) switches to
 * path-style addressing, which local servers need. Ranges are read with parallel GETs, each
 * streamed straight into the caller's buffer (no copy of an object is ever held), retried on
 * throttling and dropped connections, and pinned to the ETag seen when the object was first
 * opened so that an object replaced mid-run fails instead of mixing two versions.
 */
import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type GetObjectCommandOutput,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { AvgCkptError } from '../../errors.js';
import { TransientError, withRetries } from './s3-retry.js';
import { s3Settings, type S3Settings } from './s3-settings.js';
import { folderPrefix, formatS3Path, parseS3Path, type S3Location } from './s3-location.js';

let shared: { store: S3Store; settings: S3Settings } | undefined;

/** The store for the current settings, shared by every reader and writer of this process. */
export function s3Store(): S3Store {
  const settings = s3Settings();
  if (shared === undefined || shared.settings !== settings) shared = { store: new S3Store(settings), settings };
  return shared.store;
}

export interface S3ObjectInfo {
  readonly size: number;
  readonly etag: string | undefined;
}

export interface S3Entry {
  /** The name below the listed folder (no '/'). */
  readonly name: string;
  readonly kind: 'file' | 'dir';
  readonly size: number;
}

interface ErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

function statusOf(e: unknown): number | undefined {
  return (e as ErrorShape | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(e: unknown): boolean {
  const name = (e as ErrorShape | undefined)?.name;
  return statusOf(e) === 404 || name === 'NoSuchKey' || name === 'NotFound';
}

/** One line for an S3 failure, in the words a user can act on. */
export function s3Error(path: string, e: unknown, doing: string): AvgCkptError {
  if (e instanceof AvgCkptError) return e;
  const err = (e ?? {}) as ErrorShape;
  const status = statusOf(e);
  const why =
    err.name === 'NoSuchBucket'
      ? 'no such bucket'
      : isNotFound(e)
        ? 'no such object'
        : status === 403 || err.name === 'AccessDenied'
          ? 'access denied (check the AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID, the role)'
          : err.name === 'CredentialsProviderError'
            ? 'no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)'
            : err.code !== undefined && /^E[A-Z]+$/.test(err.code)
              ? `cannot reach the S3 endpoint (${err.code})`
              : `${err.name !== undefined && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message ?? String(e)}`;
  const tail = status !== undefined && status >= 500 ? ` (HTTP ${status}, still failing after retries)` : '';
  return new AvgCkptError('io', `cannot ${doing}: ${why}${tail}`, { file: path, cause: e });
}

/** At most `max` operations at once, started in call order. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await op();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Copies a response body into `into`, exactly `length` bytes or a retryable error. */
async function drainInto(body: Readable, into: Uint8Array, length: number, signal: AbortSignal): Promise<void> {
  let got = 0;
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (signal.aborted) throw signal.reason;
      if (got + chunk.byteLength > length) throw new Error(`the server sent more than the ${length} bytes asked for`);
      into.set(chunk, got);
      got += chunk.byteLength;
    }
  } finally {
    body.destroy();
  }
  if (got !== length) throw new TransientError(`the connection closed after ${got} of ${length} bytes`);
}

export class S3Store {
  readonly client: S3Client;
  private readonly limiter: Limiter;
  /** Objects opened for reading: size and ETag from one HEAD, pinned for the run. */
  private readonly opened = new Map<string, Promise<S3ObjectInfo>>();

  constructor(readonly settings: S3Settings) {
    // The SDK's notice about future Node versions is not the user's concern on every run.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const env = process.env;
    const region = settings.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined);
    this.client = new S3Client({
      // Local servers ignore the region but the signer needs one.
      ...(region !== undefined ? { region } : settings.endpoint !== undefined ? { region: 'us-east-1' } : {}),
      ...(settings.endpoint !== undefined ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
      followRegionRedirects: true,
      maxAttempts: 1, // retried here, with one policy for requests and for bodies cut short
      requestHandler: { connectionTimeout: 10_000, socketTimeout: 60_000 },
    });
    this.limiter = new Limiter(settings.parallel);
  }

  /** Sends with this store's retry policy and request limit. */
  send<T>(op: (signal: AbortSignal | undefined) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.limiter.run(() => withRetries(() => op(signal), this.settings.retry, signal));
  }

  async head(path: string): Promise<S3ObjectInfo | undefined> {
    const { bucket, key } = parseS3Path(path);
    if (key === '' || key.endsWith('/')) return undefined;
    try {
      const h = await this.send((abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }),
      );
      return { size: h.ContentLength ?? 0, etag: h.ETag };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw s3Error(path, e, 'look up the object');
    }
  }

  /** A file (an object), a folder (a prefix with objects below it), or nothing. */
  async stat(path: string): Promise<({ kind: 'file' } & S3ObjectInfo) | { kind: 'dir' } | undefined> {
    const info = await this.head(path);
    if (info !== undefined) return { kind: 'file', ...info };
    const { bucket, key } = parseS3Path(path);
    const page = await this.listPage(path, { Bucket: bucket, Prefix: folderPrefix(key), MaxKeys: 1 });
    return (page.KeyCount ?? 0) > 0 || key === '' ? { kind: 'dir' } : undefined;
  }

  private listPage(
    path: string,
    input: ConstructorParameters<typeof ListObjectsV2Command>[0],
  ): Promise<ListObjectsV2CommandOutput> {
    return this.send((abortSignal) => this.client.send(new ListObjectsV2Command(input), { abortSignal })).catch(
      (e: unknown) => {
        throw s3Error(path, e, 'list');
      },
    );
  }

  /** The entries directly below a folder, like readdir: objects and common prefixes. */
  async list(path: string): Promise<S3Entry[]> {
    const { bucket, key } = parseS3Path(path);
    const prefix = folderPrefix(key);
    const out: S3Entry[] = [];
    let token: string | undefined;
    do {
      const page = await this.listPage(path, {
        Bucket: bucket,
        Prefix: prefix,
        Delimiter: '/',
        ContinuationToken: token,
      });
      for (const p of page.CommonPrefixes ?? [])
        out.push({ name: p.Prefix!.slice(prefix.length, -1), kind: 'dir', size: 0 });
      for (const o of page.Contents ?? []) {
        const name = o.Key!.slice(prefix.length);
        if (name !== '') out.push({ name, kind: 'file', size: o.Size ?? 0 });
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Every key below `prefix` (a key prefix, not only whole folders), for globs and cleanup. */
  async listKeys(bucket: string, prefix: string): Promise<{ key: string; size: number }[]> {
    const out: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const page = await this.listPage(formatS3Path({ bucket, key: prefix }), {
        Bucket: bucket,
        Prefix: prefix,
        ContinuationToken: token,
      });
      for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 });
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out;
  }

  /** Size and ETag of an object opened for reading, looked up once per run. */
  open(path: string): Promise<S3ObjectInfo> {
    let info = this.opened.get(path);
    if (info === undefined) {
      info = this.head(path).then((i) => {
        if (i === undefined) throw new AvgCkptError('io', 'no such file or object', { file: path });
        return i;
      });
      info.catch(() => this.opened.delete(path));
      this.opened.set(path, info);
    }
    return info;
  }

  /** Reads exactly `length` bytes at `position` into `into`, as parallel ranged GETs. */
  async read(path: string, position: number, into: Uint8Array, length = into.byteLength): Promise<void> {
    const info = await this.open(path);
    if (position + length > info.size) {
      throw new AvgCkptError(
        'io',
        `object ended at byte ${info.size} while reading ${length} bytes at ${position}: it was truncated or replaced while avg-ckpt read it`,
        { file: path },
      );
    }
    const loc = parseS3Path(path);
    const stop = new AbortController();
    const parts: Promise<void>[] = [];
    for (let off = 0; off < length; off += this.settings.rangeBytes) {
      const n = Math.min(this.settings.rangeBytes, length - off);
      parts.push(
        this.send(
          (signal) => this.getRange(loc, info, position + off, into.subarray(off, off + n), signal!),
          stop.signal,
        ).catch((e: unknown) => {
          stop.abort(e); // the other parts stop early; none writes into `into` after we return
          throw e;
        }),
      );
    }
    // Every part has settled before returning or throwing: the caller may reuse `into` at once.
    await Promise.allSettled(parts);
    if (stop.signal.aborted) {
      // the first failure, not the parts it stopped
      throw s3Error(path, stop.signal.reason, `read bytes ${position}-${position + length - 1}`);
    }
  }

  private async getRange(
    loc: S3Location,
    info: S3ObjectInfo,
    start: number,
    into: Uint8Array,
    signal: AbortSignal,
  ): Promise<void> {
    const path = formatS3Path(loc);
    let res: GetObjectCommandOutput;
    try {
      res = await this.client.send(
        new GetObjectCommand({
          Bucket: loc.bucket,
          Key: loc.key,
          Range: `bytes=${start}-${start + into.byteLength - 1}`,
          IfMatch: info.etag,
        }),
        { abortSignal: signal },
      );
    } catch (e) {
      if (isNotFound(e)) throw new AvgCkptError('io', 'was deleted while avg-ckpt read it', { file: path });
      if (statusOf(e) === 412)
        throw new AvgCkptError('io', 'was replaced while avg-ckpt read it (its ETag changed)', { file: path });
      throw e;
    }
    // Not every S3-compatible server honours If-Match: compare the ETag it sent.
    if (info.etag !== undefined && res.ETag !== undefined && res.ETag !== info.etag) {
      (res.Body as Readable | undefined)?.destroy();
      throw new AvgCkptError('io', 'was replaced while avg-ckpt read it (its ETag changed)', { file: path });
    }
    await drainInto(res.Body as Readable, into, into.byteLength, signal);
  }

  /** The whole object (headers, index files, small data): one GET, retried. */
  async readWhole(path: string): Promise<Buffer> {
    const info = await this.open(path);
    const buf = Buffer.alloc(info.size);
    if (info.size > 0) await this.read(path, 0, buf);
    return buf;
  }

  /** Deletes keys in batches of 1,000 (S3's limit per request). */
  async deleteKeys(bucket: string, keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const Objects = keys.slice(i, i + 1000).map((Key) => ({ Key }));
      const path = formatS3Path({ bucket, key: Objects[0].Key });
      const res = await this.send((abortSignal) =>
        this.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects, Quiet: true } }), {
          abortSignal,
        }),
      ).catch((e: unknown) => {
        throw s3Error(path, e, 'delete');
      });
      const err = res.Errors?.[0];
      if (err !== undefined)
        throw s3Error(formatS3Path({ bucket, key: err.Key ?? '' }), new Error(err.Message ?? err.Code), 'delete');
    }
  }

  /** Forgets pinned ETags (a new run may see new versions). */
  forget(): void {
    this.opened.clear();
  }
}
