/**
 * The one dtype table of avg-ckpt: every element type it meets, keyed by its safetensors name,
 * with its names in ONNX, NumPy and PyTorch, its size, its typed array and what avg-ckpt does
 * with it. Conversions between bits and float64 are in float-codec.ts.
 */

/** ONNX TensorProto.DataType codes (onnx.proto). */
export const ONNX_DTYPE = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
} as const;

type TypedArrayConstructor =
  | Float64ArrayConstructor
  | Float32ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

interface DTypeInfo {
  readonly bits: number;
  readonly kind: 'float' | 'int' | 'bool' | 'complex';
  readonly onnx?: number;
  /** NumPy's array-protocol descriptor and dtype name (also onnxruntime-node's tensor type name). */
  readonly numpy?: { readonly descr: string; readonly name: string };
  /** `torch.float32`, and the legacy storage class torch pickles (`FloatStorage`). */
  readonly torch?: { readonly dtype: string; readonly storage?: string };
  /** The typed array over stored elements (16-bit floats as their bits). */
  readonly array?: TypedArrayConstructor;
  /** Decoded exactly to float64, so it can be averaged. */
  readonly readable?: true;
  /** avg-ckpt writes it (rounding once from float64). */
  readonly writable?: true;
}

const TABLE = {
  BOOL: {
    bits: 8,
    kind: 'bool',
    onnx: ONNX_DTYPE.BOOL,
    numpy: { descr: '|b1', name: 'bool' },
    torch: { dtype: 'torch.bool', storage: 'BoolStorage' },
    array: Uint8Array,
  },
  U8: {
    bits: 8,
    kind: 'int',
    onnx: ONNX_DTYPE.UINT8,
    numpy: { descr: '|u1', name: 'uint8' },
    torch: { dtype: 'torch.uint8', storage: 'ByteStorage' },
    array: Uint8Array,
  },
  I8: {
    bits: 8,
    kind: 'int',
    onnx: ONNX_DTYPE.INT8,
    numpy: { descr: '|i1', name: 'int8' },
    torch: { dtype: 'torch.int8', storage: 'CharStorage' },
    array: Int8Array,
  },
  I16: {
    bits: 16,
    kind: 'int',
    onnx: ONNX_DTYPE.INT16,
    numpy: { descr: '<i2', name: 'int16' },
    torch: { dtype: 'torch.int16', storage: 'ShortStorage' },
    array: Int16Array,
  },
  U16: {
    bits: 16,
    kind: 'int',
    onnx: ONNX_DTYPE.UINT16,
    numpy: { descr: '<u2', name: 'uint16' },
    torch: { dtype: 'torch.uint16' },
    array: Uint16Array,
  },
  F16: {
    bits: 16,
    kind: 'float',
    onnx: ONNX_DTYPE.FLOAT16,
    numpy: { descr: '<f2', name: 'float16' },
    torch: { dtype: 'torch.float16', storage: 'HalfStorage' },
    array: Uint16Array,
    readable: true,
    writable: true,
  },
  BF16: {
    bits: 16,
    kind: 'float',
    onnx: ONNX_DTYPE.BFLOAT16,
    torch: { dtype: 'torch.bfloat16', storage: 'BFloat16Storage' },
    array: Uint16Array,
    readable: true,
    writable: true,
  },
  I32: {
    bits: 32,
    kind: 'int',
    onnx: ONNX_DTYPE.INT32,
    numpy: { descr: '<i4', name: 'int32' },
    torch: { dtype: 'torch.int32', storage: 'IntStorage' },
    array: Int32Array,
  },
  U32: {
    bits: 32,
    kind: 'int',
    onnx: ONNX_DTYPE.UINT32,
    numpy: { descr: '<u4', name: 'uint32' },
    torch: { dtype: 'torch.uint32' },
    array: Uint32Array,
  },
  F32: {
    bits: 32,
    kind: 'float',
    onnx: ONNX_DTYPE.FLOAT,
    numpy: { descr: '<f4', name: 'float32' },
    torch: { dtype: 'torch.float32', storage: 'FloatStorage' },
    array: Float32Array,
    readable: true,
    writable: true,
  },
  F64: {
    bits: 64,
    kind: 'float',
    onnx: ONNX_DTYPE.DOUBLE,
    numpy: { descr: '<f8', name: 'float64' },
    torch: { dtype: 'torch.float64', storage: 'DoubleStorage' },
    array: Float64Array,
    readable: true,
    writable: true,
  },
  I64: {
    bits: 64,
    kind: 'int',
    onnx: ONNX_DTYPE.INT64,
    numpy: { descr: '<i8', name: 'int64' },
    torch: { dtype: 'torch.int64', storage: 'LongStorage' },
    array: BigInt64Array,
  },
  U64: {
    bits: 64,
    kind: 'int',
    onnx: ONNX_DTYPE.UINT64,
    numpy: { descr: '<u8', name: 'uint64' },
    torch: { dtype: 'torch.uint64' },
    array: BigUint64Array,
  },
  C64: {
    bits: 64,
    kind: 'complex',
    onnx: ONNX_DTYPE.COMPLEX64,
    numpy: { descr: '<c8', name: 'complex64' },
    torch: { dtype: 'torch.complex64', storage: 'ComplexFloatStorage' },
  },
  F8_E4M3: {
    bits: 8,
    kind: 'float',
    onnx: ONNX_DTYPE.FLOAT8E4M3FN,
    torch: { dtype: 'torch.float8_e4m3fn', storage: 'Float8_e4m3fnStorage' },
    array: Uint8Array,
    readable: true,
  },
  F8_E5M2: {
    bits: 8,
    kind: 'float',
    onnx: ONNX_DTYPE.FLOAT8E5M2,
    torch: { dtype: 'torch.float8_e5m2', storage: 'Float8_e5m2Storage' },
    array: Uint8Array,
    readable: true,
  },
  F8_E8M0: { bits: 8, kind: 'float', onnx: ONNX_DTYPE.FLOAT8E8M0, torch: { dtype: 'torch.float8_e8m0fnu' } },
  F8_E4M3FNUZ: { bits: 8, kind: 'float', onnx: ONNX_DTYPE.FLOAT8E4M3FNUZ, torch: { dtype: 'torch.float8_e4m3fnuz' } },
  F8_E5M2FNUZ: { bits: 8, kind: 'float', onnx: ONNX_DTYPE.FLOAT8E5M2FNUZ, torch: { dtype: 'torch.float8_e5m2fnuz' } },
  F4: { bits: 4, kind: 'float', onnx: ONNX_DTYPE.FLOAT4E2M1 },
  F6_E2M3: { bits: 6, kind: 'float' },
  F6_E3M2: { bits: 6, kind: 'float' },
} as const satisfies Record<string, DTypeInfo>;

/** A dtype, by its safetensors name. */
export type DType = keyof typeof TABLE;
type Where<P> = { [K in DType]: (typeof TABLE)[K] extends P ? K : never }[DType];
/** NumPy's name of a dtype, as a type (`float32` for F32). */
export type NumpyName<D extends DType> = (typeof TABLE)[D] extends { numpy: { name: infer N } } ? N : never;
/** Float dtypes we can decode to float64 and therefore average. */
export type ReadableFloat = Where<{ readable: true }>;
/** Float dtypes we can write. */
export type WritableFloat = Where<{ writable: true }>;

const INFO: Readonly<Record<DType, DTypeInfo>> = TABLE;

export const DTYPES = Object.keys(TABLE) as readonly DType[];

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.hasOwn(TABLE, s);
}

export function dtypeBits(d: DType): number {
  return INFO[d].bits;
}

export function bytesPerElement(d: DType): number {
  return INFO[d].bits / 8;
}

export function isReadableFloat(d: DType): d is ReadableFloat {
  return INFO[d].readable === true;
}

export function isWritableFloat(d: DType): d is WritableFloat {
  return INFO[d].writable === true;
}

/** Float and complex dtypes, whether or not avg-ckpt can average them (sub-byte, exotic fp8). */
export function isFloatKind(d: DType): boolean {
  return INFO[d].kind === 'float' || INFO[d].kind === 'complex';
}

/** Integer and bool tensors are never averaged: they are taken from the newest checkpoint. */
export function isIntegerKind(d: DType): boolean {
  return !isFloatKind(d);
}

/** The writable dtypes by their `--dtype` flag value (`f32`, `bf16`, ...). */
export const OUTPUT_DTYPES: Readonly<Record<string, WritableFloat>> = Object.fromEntries(
  DTYPES.filter(isWritableFloat).map((d) => [d.toLowerCase(), d]),
);

const find = (match: (i: DTypeInfo) => boolean): DType | undefined => DTYPES.find((d) => match(INFO[d]));

/** The ONNX element type code with the same bytes, if there is one. */
export function onnxCodeOf(d: DType): number | undefined {
  return INFO[d].onnx;
}

export function dtypeOfOnnx(code: number): DType | undefined {
  return find((i) => i.onnx === code);
}

/** A readable name of an ONNX element type for messages (`float32`, `bfloat16`). */
export function onnxTypeName(code: number): string {
  if (code === ONNX_DTYPE.STRING) return 'string';
  const d = dtypeOfOnnx(code);
  if (d === undefined) return `type ${code}`;
  return INFO[d].numpy?.name ?? INFO[d].torch?.dtype.replace('torch.', '') ?? d.toLowerCase();
}

/** NumPy's dtype name (`float32`), also the tensor type name of onnxruntime-node. */
export function numpyNameOf(d: DType): string | undefined {
  return INFO[d].numpy?.name;
}

export function dtypeOfNumpyName(name: string): DType | undefined {
  return find((i) => i.numpy?.name === name);
}

/** A NumPy descriptor (`<f4`; `<` and `|` both accepted for one-byte types). */
export function dtypeOfNumpyDescr(descr: string): DType | undefined {
  const oneByte = descr.length === 3 && descr[2] === '1' ? `|${descr.slice(1)}` : descr;
  return find((i) => i.numpy?.descr === oneByte);
}

/** The legacy storage class torch pickles for a dtype (`FloatStorage`), if it has one. */
export function torchStorageOf(d: DType): string | undefined {
  return INFO[d].torch?.storage;
}

export function dtypeOfTorchStorage(storageClass: string): DType | undefined {
  return find((i) => i.torch?.storage === storageClass);
}

/** From `torch.float32`. */
export function dtypeOfTorchDtype(name: string): DType | undefined {
  return find((i) => i.torch?.dtype === name);
}

/** The typed array of a dtype over `buffer` (whole elements), e.g. Float32Array for F32. */
export function typedArrayOf(d: DType, buffer: ArrayBufferLike, byteOffset = 0, length?: number): ArrayBufferView {
  const A = INFO[d].array;
  if (A === undefined) throw new RangeError(`${d} has no typed array`);
  const n = length ?? (buffer.byteLength - byteOffset) / (INFO[d].bits / 8);
  return new A(buffer as ArrayBuffer, byteOffset, n);
}
