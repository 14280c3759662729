/** onnxruntime failures become one-line errors: a real allocation failure, and ORT's message shapes. */
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietOrt } from '../../src/eval/device.js';
import { ortError, ortMessage, runSession } from '../../src/eval/engine.js';
import { encodeModel, onnx } from '../../src/io/onnx/model.js';

const ctx = {
  file: 'model.onnx',
  doing: 'running the mixture graph (16 checkpoints) on cpu for lawa-8',
  memoryAdvice: 'use --engine materialize',
};

describe('onnxruntime failures', () => {
  let session: ort.InferenceSession;
  beforeAll(async () => {
    quietOrt();
    // Expand to a shape fed at run time: asking for 2^50 floats fails in ORT's allocator at once
    const vi = (name: string, elemType: number) => ({
      name,
      type: { tensorType: { elemType, shape: { dim: [{ dimValue: 1 }] } } },
    });
    session = await ort.InferenceSession.create(
      encodeModel(
        onnx.ModelProto.fromObject({
          irVersion: 8,
          opsetImport: [{ domain: '', version: 17 }],
          graph: {
            name: 'g',
            node: [{ opType: 'Expand', input: ['x', 'shape'], output: ['y'] }],
            input: [vi('x', 1), vi('shape', 7)],
            output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
          },
        }),
      ),
    );
  });
  afterAll(() => session?.release());

  it('an allocation failure during run is out-of-memory with the advice, in one line', async () => {
    const feeds = {
      x: new ort.Tensor('float32', new Float32Array([1]), [1]),
      shape: new ort.Tensor('int64', BigInt64Array.from([2n ** 50n]), [1]),
    };
    const err = await runSession(session, feeds, ['y'], ctx).catch((e) => e);
    expect(err).toMatchObject({ code: 'out-of-memory', file: 'model.onnx' });
    expect(err.message).toMatch(
      /^running the mixture graph .* ran out of memory or hit a device limit \(Expand node: Failed to allocate memory for requested buffer of size \d+\): use --engine materialize$/,
    );
    expect(err.oneLine()).not.toMatch(/\n|onnxruntime_src|BFCArena/);
  });

  it('device limits count as out-of-memory; other failures name the graph', () => {
    // the WebGPU EP's message for an oversized mixture on lavapipe (docs/gpu.md)
    const gpu = new Error(
      "Non-zero status code returned while running Concat node. Name:'' Status Message: Too many storage buffers in shader. Current: 23, Max is 16",
    );
    expect(ortError(gpu, ctx)).toMatchObject({
      code: 'out-of-memory',
      message: expect.stringContaining('(Concat node: Too many storage buffers in shader. Current: 23, Max is 16)'),
    });
    const shape = new Error(
      "Non-zero status code returned while running MatMul node. Name:'/0/MatMul' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/math/matmul_helper.h:61 onnxruntime::common::Status onnxruntime::MatMulComputeHelper::Compute(const onnxruntime::TensorShape&, const onnxruntime::TensorShape&, bool, bool, bool, bool) left operand cannot broadcast on dim 1\n",
    );
    expect(ortError(shape, ctx)).toMatchObject({
      code: 'invalid-onnx',
      file: 'model.onnx',
      message:
        'onnxruntime failed running the mixture graph (16 checkpoints) on cpu for lawa-8: MatMul node: left operand cannot broadcast on dim 1',
    });
    expect(ortMessage(new Error('std::bad_alloc'))).toBe('std::bad_alloc');
  });
});
