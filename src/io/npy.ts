/**
 * NumPy `.npy` arrays and `.npz` archives (a zip of `.npy` entries, stored or deflated). Only
 * what validation data needs: little-endian numeric dtypes in C order.
 */
import { inflateRawSync } from 'node:zlib';
import { AvgCkptError, ioError } from '../errors.js';
import { bytesPerElement, dtypeOfNumpyDescr, dtypeOfNumpyName, numpyNameOf, typedArrayOf, type DType, type NumpyName } from './dtype.js';
import { readWhole } from './storage/storage.js';

/** The dtypes validation data may have (what onnxruntime can be fed from them). */
const NPY_DTYPES = ['F64', 'F32', 'F16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const satisfies readonly DType[];

/** A validation array's dtype, by its NumPy name. */
export type NpyDType = NumpyName<(typeof NPY_DTYPES)[number]>;

/** The NumPy name of `d` when validation data may have it. */
export function npyDTypeOf(d: DType): NpyDType | undefined {
  return (NPY_DTYPES as readonly DType[]).includes(d) ? (numpyNameOf(d) as NpyDType) : undefined;
}

/** The dtype of an NpyDType name. */
export function dtypeOfNpy(n: NpyDType): DType {
  return dtypeOfNumpyName(n) as DType;
}

/** The typed array over a validation array's bytes. */
export function npyData(n: NpyDType, buffer: ArrayBufferLike): NpyData {
  return typedArrayOf(dtypeOfNpy(n), buffer) as NpyData;
}

export type NpyData = Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface NpyArray {
  readonly dtype: NpyDType;
  readonly shape: readonly number[];
  /** Elements in C order; float16 as raw bits, bool as 0/1 bytes. */
  readonly data: NpyData;
}


function bad(file: string, why: string): AvgCkptError {
  return new AvgCkptError('invalid-npy', why, { file });
}

/** Parses one `.npy` byte string (format versions 1, 2 and 3). */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.byteLength < 10 || magic.some((b, i) => bytes[i] !== b)) throw bad(file, 'not a .npy file (no \\x93NUMPY magic)');
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [lenSize, headerLen] = major === 1 ? [2, dv.getUint16(8, true)] : major === 2 || major === 3 ? [4, bytes.byteLength >= 12 ? dv.getUint32(8, true) : -1] : [0, -1];
  if (lenSize === 0) throw bad(file, `unsupported .npy format version ${major}`);
  const start = 8 + lenSize;
  if (headerLen < 0 || start + headerLen > bytes.byteLength) throw bad(file, 'header runs past the end of the file');
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad(file, `header is not a NumPy dict: ${header.trim()}`);
  const st = dtypeOfNumpyDescr(descr);
  const dtype = st === undefined ? undefined : npyDTypeOf(st);
  if (st === undefined || dtype === undefined) throw bad(file, `dtype '${descr}' is not supported (use little-endian float64/32/16, int64/32/16/8, uint8 or bool)`);
  if (fortran === 'True') throw bad(file, 'Fortran-order arrays are not supported: save with np.ascontiguousarray');
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(file, `invalid shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const byteLength = count * bytesPerElement(st);
  if (!Number.isSafeInteger(byteLength) || dataStart + byteLength > bytes.byteLength) {
    throw bad(file, `holds ${bytes.byteLength - dataStart} data bytes, shape (${shape.join(', ')}) of ${dtype} needs ${byteLength}`);
  }
  // copy into a fresh aligned buffer: typed views need alignment and callers may keep the data
  const copy = new Uint8Array(byteLength); // (Buffer.slice would be a view of a shared pool)
  copy.set(bytes.subarray(dataStart, dataStart + byteLength));
  return { dtype, shape, data: npyData(dtype, copy.buffer) };
}

export async function readNpy(path: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readWhole(path);
  } catch (e) {
    throw ioError(path, e, 'read');
  }
  return parseNpy(bytes, path);
}

/** The entries of a zip archive, from its central directory (zip64 sizes included). */
function zipEntries(zip: Uint8Array, file: string): Map<string, Uint8Array> {
  const dv = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let eocd = -1;
  for (let i = zip.byteLength - 22; i >= Math.max(0, zip.byteLength - 22 - 65535); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad(file, 'not a zip archive (no end-of-central-directory record)');
  let count = dv.getUint16(eocd + 10, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if ((count === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && dv.getUint32(eocd - 20, true) === 0x07064b50) {
    const rec = Number(dv.getBigUint64(eocd - 12, true)); // zip64 end-of-central-directory record
    count = Number(dv.getBigUint64(rec + 32, true));
    cdOffset = Number(dv.getBigUint64(rec + 48, true));
  }
  const out = new Map<string, Uint8Array>();
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > zip.byteLength || dv.getUint32(p, true) !== 0x02014b50) throw bad(file, 'corrupt zip central directory');
    const method = dv.getUint16(p + 10, true);
    let csize = dv.getUint32(p + 20, true);
    let usize = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(zip.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: the 64-bit values appear only for fields that read 0xffffffff
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = dv.getUint16(e, true);
      const size = dv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => Number(dv.getBigUint64((q += 8) - 8, true));
        if (usize === 0xffffffff) usize = next();
        if (csize === 0xffffffff) csize = next();
        if (local === 0xffffffff) local = next();
      }
      e += 4 + size;
    }
    if (dv.getUint32(local, true) !== 0x04034b50) throw bad(file, `corrupt zip entry ${name}`);
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    const raw = zip.subarray(start, start + csize);
    if (method === 0) out.set(name, raw);
    else if (method === 8) out.set(name, inflateRawSync(raw, { maxOutputLength: Math.max(1, usize) })); // the declared size bounds a zip bomb
    else throw bad(file, `zip entry ${name} uses compression method ${method}; only stored and deflate are supported`);
    if (out.get(name)!.byteLength !== usize) throw bad(file, `zip entry ${name} is truncated`);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** Reads every array of an `.npz` archive, by name without the `.npy` suffix. */
export async function readNpz(path: string): Promise<Map<string, NpyArray>> {
  let zip: Uint8Array;
  try {
    zip = await readWhole(path);
  } catch (e) {
    throw ioError(path, e, 'read');
  }
  const arrays = new Map<string, NpyArray>();
  let entries: Map<string, Uint8Array>;
  try {
    entries = zipEntries(zip, path);
  } catch (e) {
    if (e instanceof AvgCkptError) throw e;
    // offsets past the end (RangeError from DataView) or a broken deflate stream (zlib)
    throw bad(path, `corrupt zip archive (${(e as Error).message})`);
  }
  for (const [name, bytes] of entries) {
    if (!name.endsWith('.npy')) continue;
    arrays.set(name.slice(0, -4), parseNpy(bytes, `${path}:${name}`));
  }
  return arrays;
}
