/**
 * Models whose initializers live in external data, in and out. In: the digits-mlp export with
 * its weights spread over two data files (one in a subfolder) at offsets with gaps, and one
 * weight that no checkpoint holds (so every engine must read it from the data file): each
 * engine scores the oracle's LAWA-8 loss. Out: --emit-onnx writes one self-contained file, or
 * past the inline limit the graph + OUT.data (aligned, streamed); both score the same loss in a
 * fresh onnxruntime session and hold the same bytes; the pair is refused or replaced together.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { AvgCkptError } from '../../src/errors.js';
import { Evaluator } from '../../src/eval/evaluator.js';
import { readNpy } from '../../src/io/npy.js';
import {
  encodeModel,
  loadModel,
  onnx,
  setExternal,
  type ModelProto,
  type TensorProto,
} from '../../src/io/onnx/model.js';
import { INLINE_LIMIT_ENV } from '../../src/io/onnx/model-writer.js';
import { lawa } from '../../src/recipes/lawa.js';
import { discoverSeries } from '../../src/series/discover.js';
import type { Checkpoint } from '../../src/series/checkpoint.js';
import { readRef } from '../helpers/st-reference.js';

const RUN = 'fixtures/runs/digits-mlp';
const LAWA8 = (oracle as unknown as { cases: Record<string, { lawa_end: Record<string, { loss: number }> }> }).cases[
  'digits-mlp'
].lawa_end['8'].loss;
const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-external-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

let checkpoints: Checkpoint[];
let lawa8Bias: Float32Array;
beforeAll(async () => {
  checkpoints = [...(await discoverSeries([`${RUN}/run`])).checkpoints];
  // the LAWA-8 average of 4.bias, in float64 from the files (the test's own reader), rounded once
  const sum = new Float64Array(10);
  for (const ck of checkpoints.slice(-8)) {
    const b = readRef(join(ck.path, 'model.safetensors')).tensors['4.bias'];
    new Float32Array(b.bytes.slice().buffer).forEach((v, i) => (sum[i] += v / 8));
  }
  lawa8Bias = Float32Array.from(sum);
});

/** The output layer's bias under a name no checkpoint has: bound by value, or unmapped. */
const HEAD_BIAS = 'head_bias';

/**
 * The export with 0.* and 4.weight in `a.data` (from offset 100, 12 bytes apart) and 2.* and
 * 4.bias in `sub/b.bin`; 4.bias, renamed HEAD_BIAS, holds `bias`, which no checkpoint holds:
 * it stays unmapped, scored as the data file has it.
 */
async function externalVariant(folder: string, bias: Float32Array): Promise<string> {
  const dir = join(tmp, folder);
  mkdirSync(join(dir, 'sub'), { recursive: true });
  const m: ModelProto = (await loadModel(`${RUN}/model.onnx`)).proto;
  const files: Record<string, Buffer[]> = { 'a.data': [Buffer.alloc(100, 7)], 'sub/b.bin': [] };
  for (const n of m.graph!.node!) n.input = n.input!.map((i) => (i === '4.bias' ? HEAD_BIAS : i));
  for (const t of m.graph!.initializer!) {
    if (t.name === '4.bias') t.name = HEAD_BIAS;
    const location = /^(0\.|4\.weight)/.test(t.name!) ? 'a.data' : 'sub/b.bin';
    const bytes = Buffer.from(t.name === HEAD_BIAS ? new Uint8Array(bias.buffer) : t.rawData!);
    const at = files[location].reduce((s, b) => s + b.byteLength, 0);
    files[location].push(bytes, Buffer.alloc(12, 9));
    setExternal(t, location, at, bytes.byteLength);
  }
  for (const [name, parts] of Object.entries(files)) writeFileSync(join(dir, name), Buffer.concat(parts));
  writeFileSync(join(dir, 'model.onnx'), encodeModel(m));
  return join(dir, 'model.onnx');
}

const open = (onnxPath: string, engine: 'mixture' | 'fed' | 'materialize') =>
  Evaluator.create({
    onnx: onnxPath,
    checkpoints,
    data: { dataDir: RUN },
    engine,
    device: 'cpu',
    allowUnmapped: true,
  });
const lawa8 = () =>
  lawa(
    checkpoints.map((c) => c.step),
    8,
  );

/** Mean cross-entropy of a model on the validation set, computed here from its logits. */
async function lossOf(session: ort.InferenceSession): Promise<number> {
  const x = await readNpy(`${RUN}/val_input.npy`);
  const y = (await readNpy(`${RUN}/val_labels.npy`)).data as BigInt64Array;
  const out = (await session.run({ input: new ort.Tensor('float32', x.data as Float32Array, [...x.shape]) })).logits
    .data as Float32Array;
  let sum = 0;
  for (let i = 0; i < y.length; i++) {
    const row = out.subarray(i * 10, i * 10 + 10);
    const max = Math.max(...row);
    sum += max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[Number(y[i])];
  }
  return sum / y.length;
}

describe('external data in', () => {
  it.each(['mixture', 'fed', 'materialize'] as const)(
    '%s scores a model whose weights are in two data files, one weight read only from there',
    async (engine) => {
      const ev = await open(await externalVariant(`in-${engine}`, lawa8Bias), engine);
      try {
        expect(ev.engineKind).toBe(engine);
        expect(ev.unmapped?.map((u) => u.initializer)).toEqual([HEAD_BIAS]);
        expect(Math.abs((await ev.score(lawa8())).loss - LAWA8)).toBeLessThan(1e-5);
      } finally {
        await ev.close();
      }
    },
  );

  it('the unmapped weight matters: with zeros there the loss is another', async () => {
    const ev = await open(await externalVariant('in-zeros', new Float32Array(10)), 'fed');
    try {
      expect(Math.abs((await ev.score(lawa8())).loss - LAWA8)).toBeGreaterThan(1e-3);
    } finally {
      await ev.close();
    }
  });
});

describe('--emit-onnx out', () => {
  let input: string;
  beforeAll(async () => {
    input = await externalVariant('out', lawa8Bias);
  });

  async function emit(output: string, force = false): Promise<string[]> {
    const ev = await open(input, 'fed');
    try {
      return await ev.writeOnnx(lawa8(), output, force);
    } finally {
      await ev.close();
    }
  }

  /** Each initializer's bytes as the file holds them (inline or at its external offset). */
  async function bakedBytes(path: string): Promise<Map<string, string>> {
    const m = await loadModel(path);
    const { tensorBytes } = await import('../../src/io/onnx/model.js');
    const out = new Map<string, string>();
    for (const t of m.proto.graph!.initializer!) out.set(t.name!, Buffer.from(await tensorBytes(t, m)).toString('hex'));
    return out;
  }

  it('writes one self-contained file below the limit, the graph + OUT.data above it, with the same weights', async () => {
    const single = join(tmp, 'single', 'best.onnx');
    expect(await emit(single)).toEqual([single]);
    const m = onnx.ModelProto.decode(readFileSync(single));
    expect(m.graph!.initializer!.every((t) => t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL)).toBe(true);
    // loaded from memory: nothing beside it is needed
    const s1 = await ort.InferenceSession.create(readFileSync(single));
    expect(Math.abs((await lossOf(s1)) - LAWA8)).toBeLessThan(1e-5);
    await s1.release();

    vi.stubEnv(INLINE_LIMIT_ENV, '4096');
    const pair = join(tmp, 'pair', 'best.onnx');
    expect(await emit(pair)).toEqual([pair, `${pair}.data`]);
    expect(readdirSync(join(tmp, 'pair')).sort()).toEqual(['best.onnx', 'best.onnx.data']);
    const g = onnx.ModelProto.decode(readFileSync(pair));
    for (const t of g.graph!.initializer!) {
      const kv = Object.fromEntries(t.externalData!.map((e) => [e.key, e.value]));
      const size = t.name === HEAD_BIAS ? 40 : t.name!.endsWith('bias') ? 512 : 0;
      if (size > 0 && size < 1024) {
        // onnx's size_threshold: small tensors stay in the graph
        expect(t.dataLocation ?? 0).toBe(0);
        expect(t.rawData!.byteLength).toBe(size);
        continue;
      }
      expect(t.dataLocation).toBe(onnx.TensorProto.DataLocation.EXTERNAL);
      expect(kv.location).toBe('best.onnx.data');
      expect(Number(kv.offset) % 4096).toBe(0);
      expect(t.rawData === null || t.rawData === undefined || t.rawData.byteLength === 0).toBe(true);
    }
    expect(statSync(pair).size).toBeLessThan(4096);
    const s2 = await ort.InferenceSession.create(pair);
    expect(Math.abs((await lossOf(s2)) - LAWA8)).toBeLessThan(1e-5);
    await s2.release();
    // the same bytes either way: the float64 averages rounded once, the unmapped weight copied
    const a = await bakedBytes(single);
    expect(await bakedBytes(pair)).toEqual(a);
    expect(a.get(HEAD_BIAS)).toBe(Buffer.from(lawa8Bias.buffer).toString('hex'));
  });

  it('refuses an existing OUT.data without --force, writing nothing; replaces the pair with it', async () => {
    vi.stubEnv(INLINE_LIMIT_ENV, '4096');
    const dir = join(tmp, 'exists');
    mkdirSync(dir);
    writeFileSync(join(dir, 'best.onnx.data'), 'old');
    const err = await emit(join(dir, 'best.onnx')).catch((e) => e);
    expect(err).toBeInstanceOf(AvgCkptError);
    expect((err as AvgCkptError).oneLine()).toMatch(/best\.onnx\.data: already exists; pass --force/);
    expect(readdirSync(dir)).toEqual(['best.onnx.data']);
    expect(readFileSync(join(dir, 'best.onnx.data'), 'utf8')).toBe('old');

    writeFileSync(join(dir, 'best.onnx'), 'old');
    await emit(join(dir, 'best.onnx'), true);
    expect(readdirSync(dir).sort()).toEqual(['best.onnx', 'best.onnx.data']);
    const s = await ort.InferenceSession.create(join(dir, 'best.onnx'));
    expect(Math.abs((await lossOf(s)) - LAWA8)).toBeLessThan(1e-5);
    await s.release();
  });

  it('moves the external data of a Constant node into the emitted graph', async () => {
    const dir = join(tmp, 'constant');
    mkdirSync(dir);
    const m: ModelProto = (await loadModel(`${RUN}/model.onnx`)).proto;
    // logits = Gemm(...) + c, c a Constant whose 10 floats are in c.bin at offset 8
    const c = Float32Array.from({ length: 10 }, (_, i) => i / 8 - 0.5);
    writeFileSync(join(dir, 'c.bin'), Buffer.concat([Buffer.alloc(8), Buffer.from(c.buffer)]));
    const value: TensorProto = { name: 'c', dataType: 1, dims: [10] };
    setExternal(value, 'c.bin', 8, 40);
    const last = m.graph!.node![m.graph!.node!.length - 1];
    last.output = ['pre'];
    m.graph!.node!.push(
      { opType: 'Constant', output: ['c'], attribute: [{ name: 'value', type: 4, t: value }] },
      { opType: 'Add', input: ['pre', 'c'], output: ['logits'] },
    );
    writeFileSync(join(dir, 'model.onnx'), encodeModel(m));
    const ev = await open(join(dir, 'model.onnx'), 'fed');
    const out = join(tmp, 'constant-out', 'best.onnx');
    try {
      expect(await ev.writeOnnx(lawa8(), out)).toEqual([out]);
    } finally {
      await ev.close();
    }
    const baked = onnx.ModelProto.decode(readFileSync(out));
    const t = baked.graph!.node!.find((n) => n.opType === 'Constant')!.attribute![0].t!;
    expect(t.dataLocation ?? 0).toBe(0);
    expect(Buffer.from(t.rawData!)).toEqual(Buffer.from(c.buffer));
    // and it runs, from memory: nothing outside the file is needed
    const s = await ort.InferenceSession.create(readFileSync(out));
    await s.release();
  });

  it('refuses an output whose OUT.data would be an input (the model its data is read from)', async () => {
    // `a` + `.data` is the input model's own data file a.data
    const err = await emit(join(tmp, 'out', 'a'), true).catch((e) => e);
    expect(err).toBeInstanceOf(AvgCkptError);
    expect((err as AvgCkptError).code).toBe('output-is-input');
    expect((err as AvgCkptError).oneLine()).toMatch(
      /a\.data: the external data of the ONNX output is the external data/,
    );
    expect(existsSync(join(tmp, 'out', 'a'))).toBe(false);
  });
});
