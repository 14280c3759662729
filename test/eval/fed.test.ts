/**
 * The fed engine beside the other two: the same metrics on both fixture runs (materialize rounds
 * the same float64 averages once; the mixture sums in float32 inside the runtime), and a bfloat16 graph, which cannot take bfloat16 inputs, scored against a model
 * the test bakes itself: float64 averages from the checkpoint files, rounded to bfloat16 by the
 * test's own rounding, the cross-entropy computed here.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { Evaluator } from '../../src/eval/evaluator.js';
import { candidateGrid } from '../../src/eval/candidates.js';
import { encodeModel, loadModel, onnx } from '../../src/io/onnx/model.js';
import { discoverSeries } from '../../src/series/discover.js';
import { readRefDir } from '../helpers/st-reference.js';

const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-fed-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function losses(
  run: string,
  engine: 'fed' | 'materialize' | 'mixture',
  onnxPath = `fixtures/runs/${run}/model.onnx`,
): Promise<Map<string, number>> {
  const s = await discoverSeries([`fixtures/runs/${run}/run`]);
  const steps = s.checkpoints.map((c) => c.step);
  const ev = await Evaluator.create({
    onnx: onnxPath,
    checkpoints: s.checkpoints,
    data: { dataDir: `fixtures/runs/${run}`, batchSize: 200 },
    engine,
    device: 'cpu',
  });
  try {
    expect(ev.engineKind).toBe(engine);
    const out = new Map<string, number>();
    for (const v of candidateGrid(steps, { windows: [1, 2, 8, 20], ema: [0.9] }).candidates)
      out.set(v.name, (await ev.score(v)).loss);
    return out;
  } finally {
    await ev.close();
  }
}

describe('fed engine', () => {
  // digits-mlp: materialize's constant weights and the fed inputs run the same Gemm kernels, so the
  // losses are equal. digits-cnn-fp16: with constant weights the runtime reorders the Conv for
  // its blocked (NCHWc) kernels, which it cannot do for inputs; float32 sums in another order
  // move the loss by ~1e-8 there, while the fed engine equals the mixture (whose weights are
  // computed too) exactly on single-checkpoint candidates.
  for (const [run, vsMaterialize] of [
    ['digits-mlp', 1e-9],
    ['digits-cnn-fp16', 3e-8],
  ] as const) {
    it(`${run}: the same losses as materialize (${vsMaterialize}) and the mixture`, async () => {
      const fed = await losses(run, 'fed');
      const mat = await losses(run, 'materialize');
      const mix = await losses(run, 'mixture');
      expect(fed.size).toBe(6);
      for (const [name, loss] of fed) {
        expect(Math.abs(loss - mat.get(name)!), name).toBeLessThan(vsMaterialize);
        // the mixture sums the checkpoints in float32 inside the runtime
        expect(Math.abs(loss - mix.get(name)!), name).toBeLessThan(name === 'lawa-1' ? 1e-12 : 3e-8);
      }
    });
  }

  it('feeds a bfloat16 graph the float64 average rounded once to bfloat16', async () => {
    const run = 'fixtures/runs/digits-mlp';
    const base = (await loadModel(`${run}/model.onnx`)).proto;
    const series = await discoverSeries([`${run}/run`]);
    const cks = series.checkpoints;
    const newest = readRefDir(cks[cks.length - 1].path);
    // the bfloat16 graph: every initializer bfloat16 (the newest checkpoint), cast to float32 where used
    const bf = onnx.ModelProto.decode(encodeModel(base));
    const g = bf.graph!;
    for (const t of g.initializer!) {
      t.dataType = 16;
      t.rawData = toBf16Bytes(Float64Array.from(new Float32Array(newest[t.name!].bytes.slice().buffer)));
    }
    for (const n of g.node!) n.input = n.input!.map((i) => (g.initializer!.some((t) => t.name === i) ? `${i}/f32` : i));
    g.node = [
      ...g.initializer!.map((t) => ({
        opType: 'Cast',
        input: [t.name!],
        output: [`${t.name}/f32`],
        attribute: [{ name: 'to', type: 2, i: 1 }],
      })),
      ...g.node!,
    ];
    const bfPath = join(tmp, 'bf16.onnx');
    writeFileSync(bfPath, encodeModel(bf));

    const ev = await Evaluator.create({
      onnx: bfPath,
      checkpoints: cks,
      data: { dataDir: run },
      engine: 'fed',
      device: 'cpu',
    });
    const input = npyF32(`${run}/val_input.npy`);
    const labels = npyI64(`${run}/val_labels.npy`);
    try {
      for (const window of [1, 3, 8]) {
        const used = cks.slice(-window).map((c) => readRefDir(c.path));
        // the reference: the float32 graph holding the bfloat16 values of the float64 average
        const ref = onnx.ModelProto.decode(encodeModel(base));
        for (const t of ref.graph!.initializer!) {
          const avg = new Float64Array(used[0][t.name!].bytes.byteLength / 4);
          for (const ck of used)
            new Float32Array(ck[t.name!].bytes.slice().buffer).forEach((x, i) => (avg[i] += x / window));
          const bits = new Uint16Array(toBf16Bytes(avg).buffer);
          t.rawData = new Uint8Array(Uint32Array.from(bits, (b) => b << 16).buffer);
        }
        const want = await crossEntropy(encodeModel(ref), input, labels);
        const steps = cks.map((c) => c.step);
        const got = (
          await ev.score({
            name: `lawa-${window}`,
            method: 'lawa',
            params: {},
            steps,
            weights: steps.map((_, i) => (i >= steps.length - window ? 1 / window : 0)),
          })
        ).loss;
        expect(Math.abs(got - want), `window ${window}`).toBeLessThan(1e-9);
      }
    } finally {
      await ev.close();
    }
  });
});

/** Round to nearest bfloat16, ties to even, straight from float64 (the test's own rounding). */
function toBf16Bytes(values: Float64Array): Uint8Array {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const value = (bits: number) => {
    u[0] = bits << 16;
    return f[0];
  };
  values.forEach((x, i) => {
    f[0] = x;
    const lo = u[0] >>> 16; // truncated toward zero, so x lies between lo and the next one out
    let best = lo;
    if (value(lo) !== x) {
      const hi = lo + 1;
      const dl = Math.abs(x - value(lo));
      const dh = Math.abs(value(hi) - x);
      best = dh < dl || (dh === dl && (hi & 1) === 0) ? hi : lo;
    }
    out[i] = best;
  });
  return new Uint8Array(out.buffer);
}

function npyBody(path: string): { shape: number[]; body: Buffer } {
  const b = readFileSync(path);
  const n = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + n).toString('latin1');
  const shape = /'shape': \(([^)]*)\)/
    .exec(header)![1]
    .split(',')
    .filter((s) => s.trim())
    .map(Number);
  return { shape, body: b.subarray(10 + n) };
}

function npyF32(path: string): ort.Tensor {
  const { shape, body } = npyBody(path);
  return new ort.Tensor(
    'float32',
    new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)),
    shape,
  );
}

function npyI64(path: string): number[] {
  const { body } = npyBody(path);
  return Array.from(new BigInt64Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)), Number);
}

async function crossEntropy(model: Uint8Array, input: ort.Tensor, labels: number[]): Promise<number> {
  const s = await ort.InferenceSession.create(model);
  try {
    const out = await s.run({ input });
    const logits = out[s.outputNames[0]].data as Float32Array;
    const c = logits.length / labels.length;
    let sum = 0;
    labels.forEach((y, r) => {
      const row = logits.subarray(r * c, (r + 1) * c);
      const m = Math.max(...row);
      sum += m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0)) - row[y];
    });
    return sum / labels.length;
  } finally {
    await s.release();
  }
}
