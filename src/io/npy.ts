/**
 * NumPy `.npy` arrays and `.npz` archives (a zip of `.npy` entries, stored or deflated). Only
 * what validation data needs: little-endian numeric dtypes in C order.
 */
import { AvgCkptError, ioError } from '../errors.js';
import {
  bytesPerElement,
  dtypeOfNumpyDescr,
  dtypeOfNumpyName,
  numpyNameOf,
  typedArrayOf,
  type DType,
  type NumpyName,
} from './dtype.js';
import { readWhole } from './storage/storage.js';
import { bytesReader, readRecord, readZipDirectory } from './zip.js';

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

export type NpyData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

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
  if (bytes.byteLength < 10 || magic.some((b, i) => bytes[i] !== b))
    throw bad(file, 'not a .npy file (no \\x93NUMPY magic)');
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [lenSize, headerLen] =
    major === 1
      ? [2, dv.getUint16(8, true)]
      : major === 2 || major === 3
        ? [4, bytes.byteLength >= 12 ? dv.getUint32(8, true) : -1]
        : [0, -1];
  if (lenSize === 0) throw bad(file, `unsupported .npy format version ${major}`);
  const start = 8 + lenSize;
  if (headerLen < 0 || start + headerLen > bytes.byteLength) throw bad(file, 'header runs past the end of the file');
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw bad(file, `header is not a NumPy dict: ${header.trim()}`);
  const st = dtypeOfNumpyDescr(descr);
  const dtype = st === undefined ? undefined : npyDTypeOf(st);
  if (st === undefined || dtype === undefined)
    throw bad(
      file,
      `dtype '${descr}' is not supported (use little-endian float64/32/16, int64/32/16/8, uint8 or bool)`,
    );
  if (fortran === 'True') throw bad(file, 'Fortran-order arrays are not supported: save with np.ascontiguousarray');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(file, `invalid shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const byteLength = count * bytesPerElement(st);
  if (!Number.isSafeInteger(byteLength) || dataStart + byteLength > bytes.byteLength) {
    throw bad(
      file,
      `holds ${bytes.byteLength - dataStart} data bytes, shape (${shape.join(', ')}) of ${dtype} needs ${byteLength}`,
    );
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

/** Reads every array of an `.npz` archive, by name without the `.npy` suffix. */
export async function readNpz(path: string): Promise<Map<string, NpyArray>> {
  let zip: Uint8Array;
  try {
    zip = await readWhole(path);
  } catch (e) {
    throw ioError(path, e, 'read');
  }
  const arrays = new Map<string, NpyArray>();
  const reader = bytesReader(zip, path);
  try {
    for (const rec of await readZipDirectory(reader, path)) {
      if (!rec.name.endsWith('.npy')) continue;
      arrays.set(rec.name.slice(0, -4), parseNpy(await readRecord(reader, rec, path), `${path}:${rec.name}`));
    }
  } catch (e) {
    // a broken archive is bad validation data, whatever part of the zip is broken
    if (e instanceof AvgCkptError && (e.code === 'invalid-zip' || e.code === 'io')) throw bad(path, e.message);
    throw e;
  }
  return arrays;
}
