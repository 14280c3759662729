/**
 * Writing outputs to S3, which has no rename: an object appears whole when its multipart
 * upload is completed (or its single PUT ends), never in part. A folder output is written
 * shards first, then the index and config files, then the success marker `_SUCCESS` last:
 * a folder without the marker is not a finished output. A failed or interrupted write aborts
 * its multipart uploads and deletes every object it completed.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { AvgCkptError } from '../../errors.js';
import { SUCCESS_MARKER } from './output.js';
import { folderPrefix, joinS3Path, parseS3Path, type S3Location } from './s3-location.js';
import { s3Error, type S3Store } from './s3.js';

/** S3 allows at most 10,000 parts per upload. */
const MAX_PARTS = 10_000;
/** Parts uploading at once per object: memory is (this + 1) x the part size. */
const PARTS_IN_FLIGHT = 3;

/** Multipart uploads started and not yet completed or aborted, for cleanup on a signal. */
const unfinished = new Set<S3ObjectWriter>();

/** A sequential byte sink into one object: parts upload while the next one fills. */
export class S3ObjectWriter {
  private part: Uint8Array;
  private filled = 0;
  private written = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private state: 'open' | 'closed' | 'discarded' = 'open';
  private readonly loc: S3Location;

  /** @param expectedSize when known, parts grow so that the object fits in 10,000 of them */
  constructor(
    private readonly store: S3Store,
    readonly path: string,
    expectedSize?: number,
    private readonly onClosed?: () => void,
  ) {
    this.loc = parseS3Path(path);
    const min = store.settings.partBytes;
    const needed = expectedSize === undefined ? 0 : Math.ceil(expectedSize / MAX_PARTS / (1 << 20)) * (1 << 20);
    this.part = new Uint8Array(Math.max(min, needed));
    unfinished.add(this);
  }

  /** Appends bytes (copied: the caller may reuse its buffer). */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.state !== 'open') throw new AvgCkptError('internal', 'write after close', { file: this.path });
    let off = 0;
    while (off < bytes.byteLength) {
      const n = Math.min(bytes.byteLength - off, this.part.byteLength - this.filled);
      this.part.set(bytes.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === this.part.byteLength) await this.sendPart();
    }
    this.written += bytes.byteLength;
  }

  private async sendPart(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.uploadId === undefined) {
      const res = await this.store
        .send((abortSignal) =>
          this.store.client.send(new CreateMultipartUploadCommand({ Bucket: this.loc.bucket, Key: this.loc.key }), {
            abortSignal,
          }),
        )
        .catch((e: unknown) => {
          throw s3Error(this.path, e, 'start the upload');
        });
      this.uploadId = res.UploadId;
    }
    const body = this.part.slice(0, this.filled);
    const PartNumber = this.parts.length + 1;
    const slot: CompletedPart = { PartNumber };
    this.parts.push(slot);
    this.filled = 0;
    const uploadId = this.uploadId;
    const p: Promise<void> = this.store
      .send((abortSignal) =>
        this.store.client.send(
          new UploadPartCommand({
            Bucket: this.loc.bucket,
            Key: this.loc.key,
            UploadId: uploadId,
            PartNumber,
            Body: body,
          }),
          { abortSignal },
        ),
      )
      .then((res) => {
        slot.ETag = res.ETag;
      })
      .catch((e: unknown) => {
        this.failure ??= s3Error(this.path, e, `upload part ${PartNumber}`);
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    while (this.inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(this.inFlight);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Uploads the rest and makes the object appear; `expectedSize` is checked when given. */
  async close(expectedSize?: number): Promise<void> {
    if (this.state !== 'open') return;
    if (expectedSize !== undefined && this.written !== expectedSize) {
      throw new AvgCkptError('internal', `wrote ${this.written} bytes, planned ${expectedSize}`, { file: this.path });
    }
    const { bucket, key } = this.loc;
    if (this.uploadId === undefined) {
      // Smaller than one part: a single PUT, atomic by itself.
      const body = this.part.slice(0, this.filled);
      await this.store
        .send((abortSignal) =>
          this.store.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }), { abortSignal }),
        )
        .catch((e: unknown) => {
          throw s3Error(this.path, e, 'write');
        });
    } else {
      if (this.filled > 0) await this.sendPart();
      await Promise.all(this.inFlight);
      if (this.failure !== undefined) throw this.failure;
      const uploadId = this.uploadId;
      const Parts = this.parts;
      await this.store
        .send((abortSignal) =>
          this.store.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: key,
              UploadId: uploadId,
              MultipartUpload: { Parts },
            }),
            { abortSignal },
          ),
        )
        .catch((e: unknown) => {
          throw s3Error(this.path, e, 'complete the upload');
        });
    }
    this.state = 'closed';
    this.part = new Uint8Array(0);
    unfinished.delete(this);
    this.onClosed?.();
  }

  /** Abandons the object: a started multipart upload is aborted, so no part of it remains. */
  async discard(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'discarded';
    this.part = new Uint8Array(0);
    unfinished.delete(this);
    await Promise.allSettled(this.inFlight);
    if (this.uploadId === undefined) return;
    const { bucket, key } = this.loc;
    const uploadId = this.uploadId;
    // Best effort: an upload that cannot be aborted is invisible (never an object), and a
    // bucket lifecycle rule (AbortIncompleteMultipartUpload) removes its parts.
    await this.store
      .send((abortSignal) =>
        this.store.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), {
          abortSignal,
        }),
      )
      .catch(() => undefined);
  }
}

/** Outputs being written, for cleanup on a signal (`abortS3Outputs`). */
const liveOutputs = new Set<S3Output>();

/** Aborts every S3 output still being written (from a signal handler; bounded by `timeoutMs`). */
export async function abortS3Outputs(timeoutMs = 10_000): Promise<void> {
  const all = Promise.allSettled(
    [...liveOutputs].map((o) => o.abort()).concat([...unfinished].map((w) => w.discard())),
  );
  await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}

/** An output file or folder at an `s3://` path, with the same begin / commit / abort as a local one. */
export class S3Output {
  private readonly written = new Set<string>();
  private readonly open = new Set<S3ObjectWriter>();
  private done = false;

  private constructor(
    private readonly store: S3Store,
    readonly target: string,
    readonly kind: 'file' | 'dir',
  ) {}

  /**
   * Refuses an existing output unless `force`. For a folder, `force` first deletes the previous
   * output, marker first: S3 cannot swap two folders, and a mix of both must never look finished.
   */
  static async begin(store: S3Store, target: string, kind: 'file' | 'dir', force: boolean): Promise<S3Output> {
    const { bucket, key } = parseS3Path(target);
    if (key === '' || (kind === 'file' && key.endsWith('/'))) {
      throw new AvgCkptError('usage', 'name an object key or a folder below the bucket for the output', {
        file: target,
      });
    }
    const existing = await store.stat(target);
    if (existing !== undefined && !force) {
      throw new AvgCkptError('output-exists', 'already exists; pass --force to replace it', { file: target });
    }
    if (existing?.kind === 'dir' && force) {
      const prefix = folderPrefix(key);
      const keys = (await store.listKeys(bucket, prefix)).map((o) => o.key);
      const marker = prefix + SUCCESS_MARKER;
      if (keys.includes(marker)) await store.deleteKeys(bucket, [marker]);
      await store.deleteKeys(
        bucket,
        keys.filter((k) => k !== marker),
      );
    }
    const out = new S3Output(store, target, kind);
    liveOutputs.add(out);
    return out;
  }

  /** The path of `name` in a folder output, or the target itself for a file output. */
  pathOf(name?: string): string {
    if (this.kind === 'file') return this.target;
    if (name === undefined)
      throw new AvgCkptError('internal', 'a folder output needs a file name', { file: this.target });
    return joinS3Path(this.target, name);
  }

  /** A writer for one object of the output; it counts as written once closed. */
  create(name?: string, expectedSize?: number): S3ObjectWriter {
    const path = this.pathOf(name);
    const w = new S3ObjectWriter(this.store, path, expectedSize, () => {
      this.open.delete(w);
      this.written.add(parseS3Path(path).key);
    });
    this.open.add(w);
    return w;
  }

  /** A small object written whole (index, config files). */
  async put(name: string, bytes: Uint8Array): Promise<void> {
    const w = this.create(name, bytes.byteLength);
    await w.write(bytes);
    await w.close(bytes.byteLength);
  }

  /** Finishes: for a folder, the success marker goes last. */
  async commit(): Promise<void> {
    if (this.done) return;
    if (this.open.size > 0) throw new AvgCkptError('internal', 'commit with objects still open', { file: this.target });
    if (this.kind === 'dir') await this.put(SUCCESS_MARKER, new Uint8Array(0));
    this.done = true;
    liveOutputs.delete(this);
  }

  /** Aborts open uploads and deletes every object this output completed. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    liveOutputs.delete(this);
    await Promise.allSettled([...this.open].map((w) => w.discard()));
    const { bucket } = parseS3Path(this.target);
    if (this.written.size > 0) await this.store.deleteKeys(bucket, [...this.written]).catch(() => undefined);
  }
}
