/**
 * The model writer on hand-made models: the hand-encoded single file decodes to the model with
 * each initializer's bytes inline (protobufjs, an encoder we did not write, is the reference);
 * the limit is exact (a model of `limit` bytes is one file, one byte more is the pair); a
 * producer that fails mid-way leaves no file at all, in either layout.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeModel, onnx, type ModelProto, type TensorProto } from '../../../src/io/onnx/model.js';
import { bytesData, writeModel, type TensorData } from '../../../src/io/onnx/model-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-model-writer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Bytes 0, 1, 2, ... (mod 251) of one tensor, handed over in pieces of 1000. */
function counting(n: number, failAfter?: number): TensorData {
  const all = Uint8Array.from({ length: n }, (_, i) => i % 251);
  return {
    byteLength: n,
    async produce(each) {
      for (let at = 0; at < n; at += 1000) {
        if (failAfter !== undefined && at >= failAfter) throw new Error('the averaging failed');
        await each(all.subarray(at, Math.min(n, at + 1000)));
      }
    },
  };
}

/** A model with a 5000-byte "big" (from data), an inline 3-float "small", and a Relu node. */
function model(): { proto: ModelProto; big: TensorProto } {
  const proto = onnx.ModelProto.fromObject({
    irVersion: 8,
    producerName: 'test',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      initializer: [
        { name: 'big', dataType: 2, dims: [5000] }, // uint8: its bytes come from `data`
        { name: 'small', dataType: 1, dims: [3], floatData: [1, 2, 3] },
      ],
      node: [{ opType: 'Relu', input: ['small'], output: ['y'] }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 3 }] } } } }],
    },
  });
  return { proto, big: proto.graph!.initializer![0] };
}

/** The same model as protobufjs encodes it with `big`'s bytes inline. */
function expectedSingle(): Uint8Array {
  const { proto, big } = model();
  big.rawData = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);
  return encodeModel(proto);
}

describe('writeModel', () => {
  it('writes one file that decodes to the model with the bytes inline, up to exactly the limit', async () => {
    const size = expectedSingle().byteLength;
    const out = join(tmp, 'single.onnx');
    const { proto, big } = model();
    expect(await writeModel(proto, new Map([[big, counting(5000)]]), out, false, size)).toEqual([out]);
    const got = onnx.ModelProto.toObject(onnx.ModelProto.decode(readFileSync(out)));
    expect(got).toEqual(onnx.ModelProto.toObject(onnx.ModelProto.decode(expectedSingle())));
    expect(readFileSync(out).byteLength).toBe(size);
  });

  it('one byte over the limit: the graph + OUT.data, big at offset 0 of it, small inline', async () => {
    const out = join(tmp, 'pair.onnx');
    const { proto, big } = model();
    const limit = expectedSingle().byteLength - 1;
    expect(await writeModel(proto, new Map([[big, counting(5000)]]), out, false, limit)).toEqual([out, `${out}.data`]);
    const g = onnx.ModelProto.decode(readFileSync(out));
    const [b, s] = g.graph!.initializer!;
    expect(b.dataLocation).toBe(onnx.TensorProto.DataLocation.EXTERNAL);
    expect(Object.fromEntries(b.externalData!.map((e) => [e.key, e.value]))).toEqual({
      location: 'pair.onnx.data',
      offset: '0',
      length: '5000',
    });
    expect(s.floatData).toEqual([1, 2, 3]);
    expect(readFileSync(`${out}.data`)).toEqual(Buffer.from(Uint8Array.from({ length: 5000 }, (_, i) => i % 251)));
  });

  it('aligns each external tensor to 4096 and shares the bytes of one TensorData', async () => {
    const out = join(tmp, 'aligned.onnx');
    const { proto } = model();
    const a: TensorProto = { name: 'a', dataType: 2, dims: [5000] };
    const tied: TensorProto = { name: 'tied', dataType: 2, dims: [5000] };
    proto.graph!.initializer!.push(a, tied);
    const shared = counting(5000);
    const data = new Map([
      [proto.graph!.initializer![0], bytesData(new Uint8Array(5000).fill(7))],
      [a, shared],
      [tied, shared],
    ]);
    await writeModel(proto, data, out, false, 100);
    const inits = onnx.ModelProto.decode(readFileSync(out)).graph!.initializer!;
    const offset = (t: TensorProto) => t.externalData!.find((e) => e.key === 'offset')!.value;
    expect(inits.map((t) => (t.externalData?.length ? offset(t) : 'inline'))).toEqual(['0', 'inline', '8192', '8192']);
    expect(inits[1].name).toBe('small');
    const file = readFileSync(`${out}.data`);
    expect(file.byteLength).toBe(8192 + 5000);
    expect(file.subarray(5000, 8192).every((v) => v === 0)).toBe(true);
  });

  it.each([
    ['one file', 1 << 30],
    ['the pair', 100],
  ])('a producer failing mid-way leaves nothing (%s)', async (_, limit) => {
    const dir = mkdtempSync(join(tmp, 'fail-'));
    const { proto, big } = model();
    await expect(
      writeModel(proto, new Map([[big, counting(5000, 3000)]]), join(dir, 'm.onnx'), false, limit),
    ).rejects.toThrow('the averaging failed');
    expect(readdirSync(dir)).toEqual([]);
  });
});
