/**
 * The mixture engine points onnxruntime at checkpoint bytes in place: a source that is a strided
 * view or big-endian cannot be read that way, so the mixture says it cannot be built (the
 * evaluator then takes materialize, which reads through readElements).
 */
import { describe, expect, it } from 'vitest';
import type { Binding, BoundTensor } from '../../src/eval/binding.js';
import { mixtureUnsupported } from '../../src/eval/mixture.js';
import { ONNX_DTYPE } from '../../src/io/dtype.js';
import type { TensorSource } from '../../src/io/formats/tensor-source.js';
import type { Checkpoint } from '../../src/series/checkpoint.js';

const weight: BoundTensor = {
  initializer: 'w',
  type: ONNX_DTYPE.FLOAT,
  dims: [2, 3],
  source: 'w',
  transform: 'identity',
  via: 'name',
};
const binding: Binding = { weights: [weight], integers: [], constants: [], unmapped: [] } as unknown as Binding;
const base: TensorSource = { name: 'w', dtype: 'F32', shape: [2, 3], file: 'x.pt', position: 64, byteLength: 24 };
const checkpoint = (src: TensorSource) =>
  ({ path: 'run/x.pt', tensors: new Map([['w', src]]) }) as unknown as Checkpoint;

describe('mixtureUnsupported: tensor layout', () => {
  it('a C-contiguous little-endian source is fine (also with strides that say C order)', () => {
    expect(mixtureUnsupported(binding, checkpoint(base))).toBeUndefined();
    expect(mixtureUnsupported(binding, checkpoint({ ...base, strides: [3, 1] }))).toBeUndefined();
  });
  it('a transposed view or big-endian bytes: the mixture cannot be built, naming the tensor', () => {
    expect(mixtureUnsupported(binding, checkpoint({ ...base, strides: [1, 2] }))).toMatch(
      /"w" is a strided or big-endian view/,
    );
    expect(mixtureUnsupported(binding, checkpoint({ ...base, bigEndian: true }))).toMatch(
      /"w" is a strided or big-endian view/,
    );
  });
});
