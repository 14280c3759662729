/**
 * The zip archives avg-ckpt reads: `torch.save` checkpoints and NumPy `.npz` files. Only the
 * central directory and the local headers of the records asked for are read, by range: the
 * tensor bytes of a 20 GB `.pt` stay on disk until the merge streams them.
 */
import { inflateRawSync } from 'node:zlib';
import { AvgCkptError } from '../errors.js';
import type { RangedReader as StorageReader } from './storage/storage.js';

/** The least a zip reader needs of a file: its size and positional reads (a storage reader, or bytes). */
export type RangedReader = Pick<StorageReader, 'size' | 'read'>;

/** A RangedReader over bytes already in memory. */
export function bytesReader(bytes: Uint8Array, file: string): RangedReader {
  return {
    size: bytes.byteLength,
    async read(position, into, length = into.byteLength) {
      if (position < 0 || position + length > bytes.byteLength) {
        throw new AvgCkptError(
          'io',
          `read of ${length} bytes at ${position} runs past the end (${bytes.byteLength} bytes)`,
          { file },
        );
      }
      into.set(bytes.subarray(position, position + length));
    },
  };
}

export interface ZipRecord {
  readonly name: string;
  /** 0 stored, 8 deflate. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Position of the record's local header. */
  readonly localHeader: number;
}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** A central directory larger than this is not one torch or NumPy writes. */
const MAX_DIRECTORY = 256 << 20;

function corrupt(file: string, why: string): AvgCkptError {
  return new AvgCkptError('invalid-zip', `corrupt zip archive: ${why}`, { file });
}

async function readAt(r: RangedReader, position: number, length: number, file: string): Promise<Uint8Array> {
  if (!Number.isSafeInteger(position) || position < 0 || length < 0 || position + length > r.size) {
    throw corrupt(
      file,
      `a record points to bytes ${position}..${position + length}, past the end of the ${r.size}-byte file`,
    );
  }
  const b = new Uint8Array(length);
  await r.read(position, b, length);
  return b;
}

function u64(dv: DataView, at: number, file: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(file, `a 64-bit size or offset (${v}) is out of range`);
  return Number(v);
}

/** True when `head` starts like a zip archive (a local file header). */
export function isZip(head: Uint8Array): boolean {
  return head.byteLength >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

/** The records of a zip archive, from its central directory (ZIP64 included). */
export async function readZipDirectory(r: RangedReader, file: string): Promise<ZipRecord[]> {
  const tailLength = Math.min(r.size, 22 + 65535 + 20);
  const tail = await readAt(r, r.size - tailLength, tailLength, file);
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.byteLength - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    throw new AvgCkptError('invalid-zip', 'not a zip archive (no end-of-central-directory record)', { file });
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === EOCD64_LOCATOR) {
    const at = u64(tv, eocd - 12, file);
    const rec = await readAt(r, at, 56, file);
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== EOCD64) throw corrupt(file, 'the ZIP64 end-of-central-directory record is missing');
    count = u64(rv, 32, file);
    cdSize = u64(rv, 40, file);
    cdOffset = u64(rv, 48, file);
  }
  if (cdSize > MAX_DIRECTORY) throw corrupt(file, `central directory of ${cdSize} bytes`);
  const cd = await readAt(r, cdOffset, cdSize, file);
  const dv = new DataView(cd.buffer);
  const records: ZipRecord[] = [];
  const decoder = new TextDecoder();
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > cd.byteLength || dv.getUint32(p, true) !== CENTRAL)
      throw corrupt(file, 'the central directory is cut short');
    const method = dv.getUint16(p + 10, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLength = dv.getUint16(p + 28, true);
    const extraLength = dv.getUint16(p + 30, true);
    const commentLength = dv.getUint16(p + 32, true);
    let localHeader = dv.getUint32(p + 42, true);
    const extraEnd = p + 46 + nameLength + extraLength;
    if (extraEnd > cd.byteLength) throw corrupt(file, 'the central directory is cut short');
    const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLength));
    // ZIP64 extra field: 64-bit values follow only for the fields that read 0xffffffff
    for (let e = p + 46 + nameLength; e + 4 <= extraEnd; ) {
      const id = dv.getUint16(e, true);
      const length = dv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const next = (): number => {
          if (q + 8 > Math.min(e + 4 + length, extraEnd))
            throw corrupt(file, `the ZIP64 field of ${name} is cut short`);
          q += 8;
          return u64(dv, q - 8, file);
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeader === 0xffffffff) localHeader = next();
      }
      e += 4 + length;
    }
    records.push({ name, method, compressedSize, size, localHeader });
    p = extraEnd + commentLength;
  }
  return records;
}

/** Position of a record's first data byte (its local header's name and extra fields vary). */
export async function recordDataStart(r: RangedReader, rec: ZipRecord, file: string): Promise<number> {
  const local = await readAt(r, rec.localHeader, 30, file);
  const lv = new DataView(local.buffer);
  if (lv.getUint32(0, true) !== LOCAL) throw corrupt(file, `record ${rec.name} has no local header`);
  const start = rec.localHeader + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
  if (start + rec.compressedSize > r.size) throw corrupt(file, `record ${rec.name} runs past the end of the file`);
  return start;
}

/** A record's bytes, inflated when deflated. Only for small records: the caller bounds `rec.size`. */
export async function readRecord(r: RangedReader, rec: ZipRecord, file: string): Promise<Uint8Array> {
  const start = await recordDataStart(r, rec, file);
  const raw = await readAt(r, start, rec.compressedSize, file);
  let bytes: Uint8Array;
  if (rec.method === 0) bytes = raw;
  else if (rec.method === 8) {
    try {
      bytes = inflateRawSync(raw, { maxOutputLength: Math.max(1, rec.size) }); // the declared size bounds a zip bomb
    } catch (e) {
      throw corrupt(file, `record ${rec.name} does not inflate (${(e as Error).message})`);
    }
  } else
    throw new AvgCkptError(
      'invalid-zip',
      `zip record ${rec.name} uses compression method ${rec.method}; only stored and deflate are supported`,
      { file },
    );
  if (bytes.byteLength !== rec.size) throw corrupt(file, `record ${rec.name} is truncated`);
  return bytes;
}
