/**
 * merge against float64 references computed here from the raw bytes (test/helpers), on the
 * real reference runs and on small synthetic runs for the layouts they do not cover.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { merge } from '../../src/commands/merge.js';
import { AvgCkptError } from '../../src/errors.js';
import {
  bf16ToNumber,
  bits16,
  f16ToNumber,
  f32Bytes,
  i64Bytes,
  isNearestEven16,
  readRef,
  readRefDir,
  values,
  writeRef,
} from '../helpers/st-reference.js';

const MLP = 'fixtures/runs/digits-mlp/run';
const CNN = 'fixtures/runs/digits-cnn-fp16/run';
const mlpSteps = Array.from({ length: 60 }, (_, i) => 20 * (i + 1));
const cnnSteps = Array.from({ length: 24 }, (_, i) => 25 * (i + 1));

const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-merge-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** sum_i w_i * x_i in float64, checkpoint order oldest first (the order the engine uses). */
function reference(tensors: Record<string, number[]>[], w: number[], name: string): number[] {
  const n = tensors[0][name].length;
  const acc = new Array<number>(n).fill(0);
  tensors.forEach((t, i) => {
    if (w[i] === 0) return;
    for (let j = 0; j < n; j++) acc[j] += w[i] * t[name][j];
  });
  return acc;
}

function loadValues(dirs: string[]): Record<string, number[]>[] {
  return dirs.map((d) => Object.fromEntries(Object.entries(readRefDir(d)).map(([k, t]) => [k, values(t)])));
}

const mlp = loadValues(mlpSteps.map((s) => `${MLP}/checkpoint-${s}`));
const cnn = loadValues(cnnSteps.map((s) => `${CNN}/step_${String(s).padStart(6, '0')}`));

/** EMA weights by running the recursion on one-hot vectors (independent of the closed form). */
function emaWeights(n: number, decay: (i: number) => number): number[] {
  let ema: number[] = Array.from({ length: n }, (_, j) => (j === 0 ? 1 : 0));
  for (let i = 1; i < n; i++) ema = ema.map((e, j) => decay(i) * e + (1 - decay(i)) * (j === i ? 1 : 0));
  return ema;
}

describe('merge on the F32 Trainer run (digits-mlp)', () => {
  const cases: Array<[string, Parameters<typeof merge>[1]['method'], Parameters<typeof merge>[1]['select'], number[]]> =
    [
      ['lawa 8', { method: 'lawa' }, { last: 8 }, mlpSteps.map((_, i) => (i >= 52 ? 1 / 8 : 0))],
      [
        'uniform from step 1000',
        { method: 'uniform' },
        { fromStep: 1000 },
        mlpSteps.map((s) => (s >= 1000 ? 1 / 11 : 0)),
      ],
      [
        'weights',
        { method: 'weights', weights: '1,3' },
        { last: 2 },
        mlpSteps.map((_, i) => (i === 58 ? 0.25 : i === 59 ? 0.75 : 0)),
      ],
    ];
  for (const [label, method, select, w] of cases) {
    it(`${label}: every element equals the float64 reference rounded to F32`, async () => {
      const out = join(tmp, `mlp-${label.replace(/\W+/g, '-')}.safetensors`);
      await merge([MLP], { output: out, method, select });
      const got = readRef(out).tensors;
      expect(Object.keys(got).sort()).toEqual(Object.keys(mlp[0]).sort());
      // the selection changes which checkpoints the vector spans; compare over the full series
      for (const name of Object.keys(got)) {
        const ref = reference(mlp, w, name).map(Math.fround);
        expect(got[name].dtype).toBe('F32');
        expect(values(got[name])).toEqual(ref);
      }
    });
  }

  it('ema 0.9 is the correctly rounded recursion ema_i = g ema_(i-1) + (1-g) theta_i', async () => {
    const out = join(tmp, 'mlp-ema.safetensors');
    await merge([MLP], { output: out, method: { method: 'ema', decay: 0.9 } });
    const got = readRef(out).tensors;
    const w = emaWeights(60, () => 0.9);
    for (const name of Object.keys(got)) {
      const ref = reference(mlp, w, name);
      values(got[name]).forEach((v, j) => {
        // float64 round-off between two summation orders is ~1e-16 relative, far below half an F32 ulp
        expect(Math.abs(v - ref[j])).toBeLessThanOrEqual(Math.abs(v) * 2 ** -24 * (1 + 1e-9) + 1e-45);
      });
    }
  });

  it('ema per optimizer step uses b^gap', async () => {
    const out = join(tmp, 'mlp-ema-step.safetensors');
    // every 3rd checkpoint: gaps of 60 steps, so the per-checkpoint decay is 0.999^60
    await merge([MLP], { output: out, method: { method: 'ema', decayPerStep: 0.999 }, select: { every: 3 } });
    const kept = mlpSteps.map((_, i) => (59 - i) % 3 === 0);
    const sub = mlp.filter((_, i) => kept[i]);
    const w = emaWeights(sub.length, () => 0.999 ** 60);
    const got = readRef(out).tensors;
    for (const name of Object.keys(got)) {
      const ref = reference(sub, w, name);
      values(got[name]).forEach((v, j) =>
        expect(Math.abs(v - ref[j])).toBeLessThanOrEqual(Math.abs(v) * 2 ** -24 * (1 + 1e-9) + 1e-45),
      );
    }
  });

  it('writes bf16 on request, each element the nearest-even bf16 of the float64 average', async () => {
    const out = join(tmp, 'mlp-bf16.safetensors');
    await merge([MLP], { output: out, method: { method: 'lawa' }, select: { last: 5 }, dtype: 'BF16' });
    const got = readRef(out).tensors;
    const w = mlpSteps.map((_, i) => (i >= 55 ? 1 / 5 : 0));
    for (const name of Object.keys(got)) {
      expect(got[name].dtype).toBe('BF16');
      const ref = reference(mlp, w, name);
      bits16(got[name]).forEach((h, j) => expect(isNearestEven16(h, ref[j], bf16ToNumber)).toBe(true));
    }
  });

  it('records the recipe in __metadata__', async () => {
    const out = join(tmp, 'mlp-meta.safetensors');
    await merge([MLP], { output: out, method: { method: 'lawa', k: 3 }, select: { fromStep: 1100 } });
    const meta = JSON.parse(readRef(out).metadata.avg_ckpt);
    expect(meta).toMatchObject({
      method: 'lawa',
      name: 'lawa-3',
      params: { k: 3 },
      steps: [1100, 1120, 1140, 1160, 1180, 1200],
    });
    expect(meta.weights).toEqual([0, 0, 0, 1 / 3, 1 / 3, 1 / 3]);
  });
});

describe('merge on the sharded F16 run with integer buffers (digits-cnn-fp16)', () => {
  it('keeps the shard layout, averages F16 exactly, takes I64 from the newest checkpoint', async () => {
    const out = join(tmp, 'cnn-lawa4');
    await merge([CNN], { output: `${out}/`, method: { method: 'lawa' }, select: { last: 4 } });
    const inputIndex = JSON.parse(readFileSync(`${CNN}/step_000600/model.safetensors.index.json`, 'utf8'));
    const outIndex = JSON.parse(readFileSync(`${out}/model.safetensors.index.json`, 'utf8'));
    expect(outIndex.weight_map).toEqual(inputIndex.weight_map);
    expect(outIndex.metadata.total_size).toBe(inputIndex.metadata.total_size);
    const got = readRefDir(out);
    const w = cnnSteps.map((_, i) => (i >= 20 ? 0.25 : 0));
    for (const [name, t] of Object.entries(got)) {
      if (t.dtype === 'I64') {
        expect(values(t)).toEqual(cnn[23][name]);
        continue;
      }
      expect(t.dtype).toBe('F16');
      const ref = reference(cnn, w, name);
      bits16(t).forEach((h, j) => expect(isNearestEven16(h, ref[j], f16ToNumber)).toBe(true));
    }
  });

  it('takes integers from the newest checkpoint of the window, not of the run', async () => {
    const out = join(tmp, 'cnn-window.safetensors');
    await merge([CNN], { output: out, method: { method: 'uniform' }, select: { fromStep: 100, toStep: 200 } });
    const got = readRef(out).tensors;
    expect(values(got['bn1.num_batches_tracked'])).toEqual(cnn[7]['bn1.num_batches_tracked']); // step 200
  });
});

describe('a save_pretrained folder run with config files and tied weights', () => {
  const run = join(tmp, 'hf-run');
  const steps = [100, 200, 300];
  for (const [i, s] of steps.entries()) {
    const dir = join(run, `checkpoint-${s}`);
    writeRef(
      join(dir, 'model.safetensors'),
      {
        'model.embed_tokens.weight': {
          dtype: 'F32',
          shape: [2, 3],
          bytes: f32Bytes([1, 2, 3, 4, 5, 6].map((x) => x * (i + 1))),
        },
        'model.norm.weight': { dtype: 'F32', shape: [3], bytes: f32Bytes([0.1, 0.2, 0.3].map((x) => x + i)) },
        'model.step': { dtype: 'I64', shape: [], bytes: i64Bytes([s]) },
      },
      { format: 'pt' },
    );
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ tie_word_embeddings: true, step: s }));
    writeFileSync(join(dir, 'generation_config.json'), '{}');
    writeFileSync(join(dir, 'tokenizer.json'), '{"v":1}');
    writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ global_step: s }));
    writeFileSync(join(dir, 'optimizer.pt'), 'x');
  }

  it('writes a loadable folder: config and tokenizer from the newest checkpoint, no training state, no tied copy', async () => {
    const out = join(tmp, 'hf-avg');
    await merge([run], { output: out, method: { method: 'uniform' } });
    expect(readdirSync(out).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).step).toBe(300);
    const { tensors, metadata } = readRef(join(out, 'model.safetensors'));
    expect(Object.keys(tensors).sort()).toEqual(['model.embed_tokens.weight', 'model.norm.weight', 'model.step']);
    expect(metadata.format).toBe('pt');
    expect(values(tensors['model.embed_tokens.weight'])).toEqual(
      [1, 2, 3, 4, 5, 6].map((x) => Math.fround((x * 1) / 3 + (x * 2) / 3 + (x * 3) / 3)),
    );
    expect(values(tensors['model.norm.weight'])).toEqual(
      [0.1, 0.2, 0.3].map((x) => Math.fround(Math.fround(x) / 3 + Math.fround(x + 1) / 3 + Math.fround(x + 2) / 3)),
    );
    expect(values(tensors['model.step'])).toEqual([300]);
  });

  it('refuses an existing output without --force, and an output that is an input', async () => {
    const out = join(tmp, 'exists.safetensors');
    writeFileSync(out, 'keep me');
    await expect(merge([run], { output: out, method: { method: 'uniform' } })).rejects.toMatchObject({
      code: 'output-exists',
    });
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    const input = join(run, 'checkpoint-300', 'model.safetensors');
    const before = readFileSync(input);
    await expect(merge([run], { output: input, method: { method: 'uniform' }, force: true })).rejects.toMatchObject({
      code: 'output-is-input',
    });
    await expect(merge([run], { output: run, method: { method: 'uniform' }, force: true })).rejects.toMatchObject({
      code: 'output-is-input',
    });
    expect(readFileSync(input).equals(before)).toBe(true);
  });

  it('refuses NaN in an input, naming the file and tensor, and writes nothing', async () => {
    const bad = join(tmp, 'nan-run');
    writeRef(join(bad, 'step_1.safetensors'), { w: { dtype: 'F32', shape: [2], bytes: f32Bytes([1, 2]) } });
    writeRef(join(bad, 'step_2.safetensors'), { w: { dtype: 'F32', shape: [2], bytes: f32Bytes([1, NaN]) } });
    const out = join(tmp, 'nan-out.safetensors');
    const err = await merge([bad], { output: out, method: { method: 'uniform' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AvgCkptError);
    expect(err).toMatchObject({ code: 'non-finite', file: join(bad, 'step_2.safetensors'), tensor: 'w' });
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await merge([bad], { output: out, method: { method: 'uniform' }, allowNonfinite: true });
    expect(values(readRef(out).tensors.w)).toEqual([1, NaN]);
  });
});

describe('output layouts and input dtypes', () => {
  const run = join(tmp, 'shard-run');
  for (const s of [1, 2]) {
    writeRef(join(run, `ckpt_step_${s}.safetensors`), {
      a: { dtype: 'F32', shape: [4], bytes: f32Bytes([1, 2, 3, 4].map((x) => x * s)) },
      b: { dtype: 'F32', shape: [4], bytes: f32Bytes([5, 6, 7, 8].map((x) => x * s)) },
      c: { dtype: 'F32', shape: [2], bytes: f32Bytes([9, 10].map((x) => x * s)) },
      // F8_E4M3: 0x38 is 1.0 and 0x40 is 2.0 (bias 7)
      f8: { dtype: 'F8_E4M3', shape: [2], bytes: Uint8Array.from(s === 1 ? [0x38, 0x40] : [0x40, 0x40]) },
    });
  }

  it('--shard-size splits a folder output into shards with an index that covers every tensor', async () => {
    const out = join(tmp, 'sharded-out');
    await merge([run], { output: out, method: { method: 'uniform' }, shardSize: 20, dtype: 'F32' });
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(index.weight_map).toEqual({
      a: 'model-00001-of-00003.safetensors',
      b: 'model-00002-of-00003.safetensors',
      c: 'model-00003-of-00003.safetensors',
      f8: 'model-00003-of-00003.safetensors',
    });
    const got = readRefDir(out);
    expect(values(got.a)).toEqual([1.5, 3, 4.5, 6]);
    expect(values(got.c)).toEqual([13.5, 15]);
    expect(index.metadata.total_size).toBe(16 + 16 + 8 + 8);
  });

  it('reads F8_E4M3 and asks for a writable dtype', async () => {
    await expect(
      merge([run], { output: join(tmp, 'f8.safetensors'), method: { method: 'uniform' } }),
    ).rejects.toMatchObject({ code: 'unsupported-dtype', tensor: 'f8' });
    const out = join(tmp, 'f8-bf16.safetensors');
    await merge([run], { output: out, method: { method: 'uniform' }, dtype: 'BF16' });
    expect(values(readRef(out).tensors.f8)).toEqual([1.5, 2]);
  });
});
