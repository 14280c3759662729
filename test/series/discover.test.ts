/** Series discovery of every layout, step resolution, selection and compatibility. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AvgCkptError } from '../../src/errors.js';
import { loadCheckpoint, type Checkpoint } from '../../src/series/checkpoint.js';
import { checkCompatible } from '../../src/series/compatible.js';
import { discoverSeries } from '../../src/series/discover.js';
import { selectCheckpoints } from '../../src/series/select.js';
import { resolveStep, stepFromName } from '../../src/series/step.js';
import { f32, i64, put, putSharded, simpleCkpt, stFile, tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);
let n = 0;
const dir = () => {
  const d = join(tmp.dir, `r${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
};
async function failure(p: Promise<unknown>): Promise<AvgCkptError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AvgCkptError);
  return e as AvgCkptError;
}

describe('stepFromName', () => {
  it.each([
    ['checkpoint-500', 500],
    ['checkpoint_20', 20],
    ['step_000500', 500],
    ['global_step1200', 1200],
    ['ckpt_step_1000.safetensors', 1000],
    ['model_01000.safetensors', 1000],
    ['epoch=3-step=1200.safetensors', 1200],
    ['epoch=3-step=1200-v1.safetensors', 1200],
    ['runs/x/checkpoint-300', 300],
    ['model.safetensors', undefined],
    ['final', undefined],
  ])('%s -> %s', (name, step) => {
    expect(stepFromName(name)).toBe(step);
  });
});

describe('discoverSeries layouts', () => {
  it('Trainer checkpoint-N/model.safetensors in numeric order (checkpoint-100 after checkpoint-20)', async () => {
    const d = dir();
    for (const s of [1000, 20, 100, 3]) put(join(d, `checkpoint-${s}`, 'model.safetensors'), simpleCkpt([s]));
    put(join(d, 'trainer_state.json'), '{"global_step": 1000}');
    put(join(d, 'README.md'), 'x');
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => c.step)).toEqual([3, 20, 100, 1000]);
    expect(s.checkpoints.map((c) => c.path)).toEqual([3, 20, 100, 1000].map((k) => join(d, `checkpoint-${k}`)));
    expect(s.stepsKnown).toBe(true);
    expect(s.checkpoints.every((c) => c.stepSource === 'name')).toBe(true);
  });
  it('sharded step_000500/ folders with an index', async () => {
    const d = dir();
    for (const s of [1500, 500, 1000]) {
      putSharded(join(d, `step_${String(s).padStart(6, '0')}`), {
        'model-00001-of-00002.safetensors': [{ name: 'a', dtype: 'F32', shape: [1], data: f32(s) }],
        'model-00002-of-00002.safetensors': [{ name: 'n', dtype: 'I64', shape: [], data: i64(s) }],
      });
    }
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => c.step)).toEqual([500, 1000, 1500]);
    expect(s.checkpoints.every((c) => c.files.length === 2)).toBe(true);
  });
  it('files: ckpt_step_N, model_0N, epoch=E-step=N; hidden files skipped', async () => {
    const d = dir();
    put(join(d, 'ckpt_step_1000.safetensors'), simpleCkpt([1]));
    put(join(d, 'model_01100.safetensors'), simpleCkpt([2]));
    put(join(d, 'epoch=3-step=1200.safetensors'), simpleCkpt([3]));
    put(join(d, 'epoch=0-step=200.safetensors'), simpleCkpt([4]));
    put(join(d, '.model_09999.safetensors.tmp-1234'), 'junk');
    put(join(d, '.hidden_step_5.safetensors'), 'junk');
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => c.step)).toEqual([200, 1000, 1100, 1200]);
  });
  it('step from __metadata__ (step, then global_step)', async () => {
    const d = dir();
    put(join(d, 'best.safetensors'), simpleCkpt([1], { step: '700' }));
    put(join(d, 'final.safetensors'), simpleCkpt([1], { global_step: '900' }));
    put(join(d, 'first.safetensors'), simpleCkpt([1], { step: ' 40 ' }));
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => [c.step, c.stepSource])).toEqual([
      [40, 'metadata'],
      [700, 'metadata'],
      [900, 'metadata'],
    ]);
  });
  it('step from trainer_state.json global_step', async () => {
    const d = dir();
    for (const [name, step] of [
      ['final', 900],
      ['best', 300],
    ] as const) {
      put(join(d, name, 'model.safetensors'), simpleCkpt([1]));
      put(join(d, name, 'trainer_state.json'), JSON.stringify({ global_step: step, log_history: [] }));
    }
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => [c.path, c.step, c.stepSource])).toEqual([
      [join(d, 'best'), 300, 'trainer_state'],
      [join(d, 'final'), 900, 'trainer_state'],
    ]);
  });
  it('name beats metadata beats trainer_state', async () => {
    const d = dir();
    put(join(d, 'checkpoint-5', 'model.safetensors'), simpleCkpt([1], { step: '6' }));
    put(join(d, 'checkpoint-5', 'trainer_state.json'), '{"global_step": 7}');
    put(join(d, 'final', 'model.safetensors'), simpleCkpt([1], { step: '8' }));
    put(join(d, 'final', 'trainer_state.json'), '{"global_step": 9}');
    const cks = await Promise.all([join(d, 'checkpoint-5'), join(d, 'final')].map(loadCheckpoint));
    expect(await Promise.all(cks.map(resolveStep))).toEqual([
      { step: 5, source: 'name' },
      { step: 8, source: 'metadata' },
    ]);
  });
  it('unknown steps: the order given is kept and steps are 1..n', async () => {
    const d = dir();
    const paths = ['zeta', 'alpha', 'mid'].map((x) => put(join(d, `${x}.safetensors`), simpleCkpt([1])));
    const s = await discoverSeries(paths);
    expect(s.stepsKnown).toBe(false);
    expect(s.checkpoints.map((c) => c.path)).toEqual(paths);
    expect(s.checkpoints.map((c) => [c.step, c.stepSource])).toEqual([
      [1, 'order'],
      [2, 'order'],
      [3, 'order'],
    ]);
  });
  it('one unknown step among known ones: order given for all', async () => {
    const d = dir();
    const paths = [
      put(join(d, 'ckpt_step_9.safetensors'), simpleCkpt([1])),
      put(join(d, 'final.safetensors'), simpleCkpt([1])),
      put(join(d, 'ckpt_step_3.safetensors'), simpleCkpt([1])),
    ];
    const s = await discoverSeries(paths);
    expect(s.stepsKnown).toBe(false);
    expect(s.checkpoints.map((c) => c.path)).toEqual(paths);
  });
  it('explicit paths with known steps are sorted by step', async () => {
    const d = dir();
    const paths = [30, 4, 200].map((k) => put(join(d, `ckpt_step_${k}.safetensors`), simpleCkpt([k])));
    expect((await discoverSeries(paths)).checkpoints.map((c) => c.step)).toEqual([4, 30, 200]);
  });
  it('a glob', async () => {
    const d = dir();
    for (const k of [100, 20, 3]) put(join(d, `checkpoint-${k}`, 'model.safetensors'), simpleCkpt([k]));
    put(join(d, 'other-7', 'model.safetensors'), simpleCkpt([1]));
    const s = await discoverSeries([join(d, 'checkpoint-*')]);
    expect(s.checkpoints.map((c) => c.step)).toEqual([3, 20, 100]);
  });
  it('the reference fixtures', async () => {
    const mlp = await discoverSeries(['fixtures/runs/digits-mlp/run']);
    expect(mlp.checkpoints.length).toBe(60);
    expect(mlp.checkpoints.map((c) => c.step)).toEqual(Array.from({ length: 60 }, (_, i) => 20 * (i + 1)));
    const cnn = await discoverSeries(['fixtures/runs/digits-cnn-fp16/run']);
    expect(cnn.checkpoints.map((c) => c.step)).toEqual(Array.from({ length: 24 }, (_, i) => 25 * (i + 1)));
  });
});

describe('discoverSeries errors', () => {
  it('duplicate steps name both checkpoints', async () => {
    const d = dir();
    put(join(d, 'ckpt_step_10.safetensors'), simpleCkpt([1]));
    put(join(d, 'model_0010.safetensors'), simpleCkpt([1]));
    const e = await failure(discoverSeries([d]));
    expect(e.code).toBe('duplicate-step');
    expect([join(d, 'ckpt_step_10.safetensors'), join(d, 'model_0010.safetensors')]).toContain(e.file);
    expect(e.oneLine()).toContain('10');
  });
  it('an empty run folder', async () => {
    const d = dir();
    const e = await failure(discoverSeries([d]));
    expect(e.code).toBe('no-checkpoints');
    expect(e.file).toBe(d);
  });
  it('a glob matching nothing, a missing path, no inputs', async () => {
    const d = dir();
    expect((await failure(discoverSeries([join(d, 'ckpt-*')]))).code).toBe('no-checkpoints');
    const missing = await failure(discoverSeries([join(d, 'nope')]));
    expect(missing.code).toBe('io');
    expect(missing.file).toBe(join(d, 'nope'));
    expect((await failure(discoverSeries([]))).code).toBe('usage');
  });
  it('a corrupt checkpoint in the run names that file', async () => {
    const d = dir();
    put(join(d, 'checkpoint-1', 'model.safetensors'), simpleCkpt([1]));
    const bad = put(join(d, 'checkpoint-2', 'model.safetensors'), simpleCkpt([1]).subarray(0, 30));
    const e = await failure(discoverSeries([d]));
    expect(e.file).toBe(bad);
  });
});

// ---- selection -------------------------------------------------------------------------------

const fake = (steps: number[]) => steps.map((step) => ({ step }) as Checkpoint);
const stepsOf = (cs: Checkpoint[]) => cs.map((c) => c.step);

describe('selectCheckpoints', () => {
  const all = fake([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  it('range is inclusive', () => {
    expect(stepsOf(selectCheckpoints(all, { fromStep: 30, toStep: 60 }))).toEqual([30, 40, 50, 60]);
    expect(stepsOf(selectCheckpoints(all, { fromStep: 35 }))).toEqual([40, 50, 60, 70, 80, 90, 100]);
  });
  it('every N counts back from the newest', () => {
    expect(stepsOf(selectCheckpoints(all, { every: 3 }))).toEqual([10, 40, 70, 100]);
    expect(stepsOf(selectCheckpoints(all, { every: 4 }))).toEqual([20, 60, 100]);
    expect(stepsOf(selectCheckpoints(all, { every: 1 }))).toEqual(stepsOf(all));
  });
  it('range, then every, then last', () => {
    // range 20..90 -> [20..90]; every 2 back from 90 -> [30,50,70,90]; last 3
    expect(stepsOf(selectCheckpoints(all, { fromStep: 20, toStep: 90, every: 2, last: 3 }))).toEqual([50, 70, 90]);
    expect(stepsOf(selectCheckpoints(all, { last: 100 }))).toEqual(stepsOf(all));
  });
  it('empty selections and bad numbers', () => {
    const e = (() => {
      try {
        selectCheckpoints(all, { fromStep: 101 });
      } catch (x) {
        return x as AvgCkptError;
      }
      return undefined;
    })();
    expect(e?.code).toBe('empty-selection');
    expect(e?.message).toContain('10..100');
    for (const bad of [{ every: 0 }, { last: 0 }, { last: 1.5 }, { every: -2 }]) {
      expect(() => selectCheckpoints(all, bad)).toThrow(AvgCkptError);
      try {
        selectCheckpoints(all, bad);
      } catch (x) {
        expect((x as AvgCkptError).code).toBe('usage');
      }
    }
  });
});

// ---- compatibility ---------------------------------------------------------------------------

describe('checkCompatible', () => {
  async function series(...files: Uint8Array[]) {
    const d = dir();
    const cks: Checkpoint[] = [];
    for (const [i, f] of files.entries())
      cks.push(await loadCheckpoint(put(join(d, `ckpt_step_${i + 1}.safetensors`), f)));
    return cks;
  }
  const w = (shape: number[], dtype = 'F32') => ({
    name: 'w',
    dtype,
    shape,
    data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * (dtype === 'F16' ? 2 : 4)),
  });
  const v = { name: 'v', dtype: 'F32', shape: [1], data: f32(1) };
  it('accepts identical layouts (different order in the file too)', async () => {
    expect(() => checkCompatible([])).not.toThrow();
  });
  it('same names, shapes, dtypes in any order pass', async () => {
    const cks = await series(stFile([w([2]), v]), stFile([v, w([2])]));
    expect(() => checkCompatible(cks)).not.toThrow();
  });
  const cases: [string, Uint8Array, Uint8Array, string, number][] = [
    ['missing key in an older checkpoint', stFile([w([2])]), stFile([w([2]), v]), 'v', 0],
    ['extra key in an older checkpoint', stFile([w([2]), v]), stFile([w([2])]), 'v', 0],
    ['different shape', stFile([w([3])]), stFile([w([2])]), 'w', 0],
    ['different rank', stFile([w([2, 1])]), stFile([w([2])]), 'w', 0],
    ['different dtype', stFile([w([2], 'F16')]), stFile([w([2])]), 'w', 0],
  ];
  it.each(cases)('%s: series-mismatch naming the tensor and the older file', async (_l, older, newest, tensor, idx) => {
    const cks = await series(older, newest);
    let e: unknown;
    try {
      checkCompatible(cks);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(AvgCkptError);
    expect((e as AvgCkptError).code).toBe('series-mismatch');
    expect((e as AvgCkptError).tensor).toBe(tensor);
    expect((e as AvgCkptError).file).toBe(cks[idx].files[0]);
  });
});

it('trainer_state.json that is not JSON falls back to the order given', async () => {
  const d = dir();
  put(join(d, 'final', 'model.safetensors'), simpleCkpt([1]));
  writeFileSync(join(d, 'final', 'trainer_state.json'), '{not json');
  expect(await resolveStep(await loadCheckpoint(join(d, 'final')))).toBeUndefined();
});
