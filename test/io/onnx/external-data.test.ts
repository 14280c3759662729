/**
 * ONNX models with their initializers in external data: loaded from their folder, with the
 * references checked against the files before any engine reads them. A model is a user's file:
 * a location that leaves the model's folder, a range past the file's end, a folder or a length
 * that is not the tensor's is refused in one line naming the model and the initializer.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type onnxProto from 'onnx-proto';
import { AvgCkptError } from '../../../src/errors.js';
import { encodeModel, loadModel, onnx, tensorBytes, type TensorProto } from '../../../src/io/onnx/model.js';

const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-onnx-external-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A [2, 3] float32 tensor named `name` whose data is `entries` (onnx's external_data key/value pairs). */
const externalTensor = (name: string, entries: Record<string, string>): TensorProto => ({
  name,
  dataType: onnx.TensorProto.DataType.FLOAT,
  dims: [2, 3],
  dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
  externalData: Object.entries(entries).map(([key, value]) => ({ key, value })),
});

/** Writes a model with `graph` as `name` in the test folder. */
function modelFile(name: string, graph: onnxProto.onnx.IGraphProto): string {
  const path = join(tmp, name);
  const model = onnx.ModelProto.fromObject({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph });
  writeFileSync(path, encodeModel(model));
  return path;
}

/** A model whose one initializer "w" has the external data `entries`. */
const modelWith = (name: string, entries: Record<string, string>) =>
  modelFile(name, { name: 'g', initializer: [externalTensor('w', entries)] });

async function refusal(path: string): Promise<string> {
  try {
    await loadModel(path);
  } catch (e) {
    expect(e).toBeInstanceOf(AvgCkptError);
    expect((e as AvgCkptError).code).toBe('invalid-onnx');
    return (e as AvgCkptError).oneLine();
  }
  throw new Error(`${path} was loaded`);
}

// 24 bytes of data (six float32s), with 8 bytes of something else before them
const values = Float32Array.from([1.5, -2, 3.25, 0, 7, -0.125]);
writeFileSync(join(tmp, 'w.data'), Buffer.concat([Buffer.from('12345678'), Buffer.from(values.buffer)]));
mkdirSync(join(tmp, 'sub'));
writeFileSync(join(tmp, 'sub', 'w.bin'), Buffer.from(values.buffer));
mkdirSync(join(tmp, 'a-folder'));

describe('external data of ONNX initializers', () => {
  it('reads a tensor at its offset, in the model folder or below it', async () => {
    for (const [name, entries] of [
      ['offset.onnx', { location: 'w.data', offset: '8', length: '24' }],
      ['sub.onnx', { location: 'sub/w.bin' }],
    ] as const) {
      const model = await loadModel(modelWith(name, entries));
      const t = model.proto.graph!.initializer![0];
      expect(new Float32Array(new Uint8Array(await tensorBytes(t, model)).buffer)).toEqual(values);
    }
  });

  it('checks the external data of tensors in node attributes too (a Constant, a subgraph)', async () => {
    const c = externalTensor('c', { location: '../w.data' });
    const path = modelFile('constant.onnx', {
      name: 'g',
      node: [{ opType: 'Constant', output: ['y'], attribute: [{ name: 'value', type: 4, t: c }] }],
      output: [{ name: 'y' }],
    });
    expect(await refusal(path)).toMatch(
      /^.*constant\.onnx: tensor "c": external data location "\.\.\/w\.data" is absolute or leaves/,
    );
  });

  it.each([
    [
      'an absolute location',
      { location: join(tmp, 'w.data'), offset: '8' },
      /is absolute or leaves the model's folder/,
    ],
    ['a location out of the folder', { location: '../w.data' }, /"\.\.\/w\.data" is absolute or leaves/],
    ['a location that goes out and back', { location: 'sub/../../x/w.data' }, /leaves the model's folder/],
    [
      'a range past the end',
      { location: 'w.data', offset: '16' },
      /runs past the end of its file: offset 16 \+ length 24 > 32 bytes/,
    ],
    ['a folder', { location: 'a-folder' }, /external data "a-folder" is a folder, not a data file/],
    ['a missing file', { location: 'nowhere.data' }, /"nowhere\.data" does not exist/],
    [
      'a negative offset',
      { location: 'w.data', offset: '-8' },
      /offset "-8" and length "undefined": byte counts expected/,
    ],
    [
      'a length that is not the tensor',
      { location: 'w.data', length: '20' },
      /length 20, but the tensor's 2x3 float32 takes 24 bytes/,
    ],
    ['no location', { offset: '0' }, /external data has no location/],
  ])('refuses %s in one line naming the model and the initializer', async (_, entries, why) => {
    const path = modelWith('hostile.onnx', entries);
    const line = await refusal(path);
    expect(line).toMatch(why);
    expect(line.startsWith(`${path}: tensor "w": `)).toBe(true);
    expect(line).not.toMatch(/\n/);
  });
});
