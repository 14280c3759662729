/**
 * The dtype table against the published numbering of each ecosystem: ONNX TensorProto.DataType
 * (onnx.proto), NumPy's array-protocol descriptors, and PyTorch's dtype and storage class names.
 */
import { describe, expect, it } from 'vitest';
import {
  bytesPerElement,
  DTYPES,
  dtypeOfNumpyDescr,
  dtypeOfOnnx,
  dtypeOfTorchDtype,
  dtypeOfTorchStorage,
  numpyNameOf,
  ONNX_DTYPE,
  onnxCodeOf,
  onnxTypeName,
  OUTPUT_DTYPES,
  typedArrayOf,
} from '../../src/io/dtype.js';

describe('the dtype table', () => {
  it("ONNX codes are onnx.proto's", () => {
    const proto: Record<string, number> = {
      F32: 1,
      U8: 2,
      I8: 3,
      U16: 4,
      I16: 5,
      I32: 6,
      I64: 7,
      BOOL: 9,
      F16: 10,
      F64: 11,
      U32: 12,
      U64: 13,
      C64: 14,
      BF16: 16,
      F8_E4M3: 17,
      F8_E4M3FNUZ: 18,
      F8_E5M2: 19,
      F8_E5M2FNUZ: 20,
      F4: 23,
      F8_E8M0: 24,
    };
    for (const [d, code] of Object.entries(proto)) {
      expect(onnxCodeOf(d as never)).toBe(code);
      expect(dtypeOfOnnx(code)).toBe(d);
    }
    expect(ONNX_DTYPE.STRING).toBe(8);
    expect(onnxTypeName(8)).toBe('string');
    expect(onnxTypeName(16)).toBe('bfloat16');
    expect(onnxTypeName(99)).toBe('type 99');
  });
  it('NumPy descriptors and names', () => {
    const numpy: [string, string, string][] = [
      ['<f8', 'F64', 'float64'],
      ['<f4', 'F32', 'float32'],
      ['<f2', 'F16', 'float16'],
      ['<i8', 'I64', 'int64'],
      ['<u2', 'U16', 'uint16'],
      ['|b1', 'BOOL', 'bool'],
      ['|u1', 'U8', 'uint8'],
      ['<i1', 'I8', 'int8'],
    ];
    for (const [descr, d, name] of numpy) {
      expect(dtypeOfNumpyDescr(descr)).toBe(d);
      expect(numpyNameOf(d as never)).toBe(name);
    }
    expect(dtypeOfNumpyDescr('>f4')).toBeUndefined(); // big-endian is not C-order little-endian data
  });
  it('PyTorch dtype and storage class names', () => {
    const torch: [string, string, string][] = [
      ['FloatStorage', 'torch.float32', 'F32'],
      ['DoubleStorage', 'torch.float64', 'F64'],
      ['HalfStorage', 'torch.float16', 'F16'],
      ['BFloat16Storage', 'torch.bfloat16', 'BF16'],
      ['LongStorage', 'torch.int64', 'I64'],
      ['IntStorage', 'torch.int32', 'I32'],
      ['ShortStorage', 'torch.int16', 'I16'],
      ['CharStorage', 'torch.int8', 'I8'],
      ['ByteStorage', 'torch.uint8', 'U8'],
      ['BoolStorage', 'torch.bool', 'BOOL'],
      ['Float8_e4m3fnStorage', 'torch.float8_e4m3fn', 'F8_E4M3'],
      ['Float8_e5m2Storage', 'torch.float8_e5m2', 'F8_E5M2'],
    ];
    for (const [storage, dtype, d] of torch) {
      expect(dtypeOfTorchStorage(storage)).toBe(d);
      expect(dtypeOfTorchDtype(dtype)).toBe(d);
    }
    expect(dtypeOfTorchStorage('os.system')).toBeUndefined();
  });
  it('typed arrays match the element size', () => {
    for (const d of DTYPES) {
      if (bytesPerElement(d) % 1 !== 0 || d === 'C64' || (d.startsWith('F8_E') && !['F8_E4M3', 'F8_E5M2'].includes(d)))
        continue;
      const a = typedArrayOf(d, new ArrayBuffer(16));
      expect(a.byteLength).toBe(16);
      expect((a as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT).toBe(bytesPerElement(d));
    }
  });
  it('--dtype values are the writable floats', () => {
    expect(OUTPUT_DTYPES).toEqual({ f16: 'F16', bf16: 'BF16', f32: 'F32', f64: 'F64' });
  });
});
