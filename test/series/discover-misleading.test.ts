/**
 * Discovery that cannot mislead (issue 10.1): the layouts of real runs that used to give a wrong
 * series with exit 0, each now the right series with a note, or one clear error.
 */
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { AvgCkptError } from '../../src/errors.js';
import { discoverSeries } from '../../src/series/discover.js';
import { put, simpleCkpt, tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);
afterEach(() => vi.restoreAllMocks());
let n = 0;
const dir = (name = `r${n++}`) => {
  const d = join(tmp.dir, `${n++}`, name);
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
/** What avg-ckpt writes into an output's metadata. */
const AVERAGE = {
  avg_ckpt: JSON.stringify({
    version: '0',
    method: 'lawa',
    name: 'lawa-8',
    params: {},
    steps: [1, 2],
    weights: [0.5, 0.5],
  }),
};

describe('a Trainer output_dir: final model at the top, the series in checkpoint-*/', () => {
  it('is the checkpoint folders, with a note that the top model was left out', async () => {
    const d = dir('out');
    put(join(d, 'model.safetensors'), simpleCkpt([9]));
    put(join(d, 'config.json'), '{}');
    put(join(d, 'trainer_state.json'), '{"global_step": 30}');
    for (const s of [10, 20, 30]) put(join(d, `checkpoint-${s}`, 'model.safetensors'), simpleCkpt([s]));
    put(join(d, 'runs', 'events.out.tfevents.1'), 'x');
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => [c.step, c.path])).toEqual(
      [10, 20, 30].map((k) => [k, join(d, `checkpoint-${k}`)]),
    );
    expect(s.notes).toHaveLength(1);
    expect(s.notes[0]).toContain('model.safetensors');
    expect(s.notes[0]).toContain('left out');
  });
  it('a folder holding only a model is that one checkpoint', async () => {
    const d = dir('checkpoint-40');
    put(join(d, 'model.safetensors'), simpleCkpt([1]));
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => [c.step, c.path])).toEqual([[40, d]]);
    expect(s.notes).toEqual([]);
  });
});

describe("digits in the run folder's own name never become a step", () => {
  it('rc5/ holding one model: no step 5', async () => {
    const d = dir('rc5');
    put(join(d, 'model.safetensors'), simpleCkpt([1]));
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => c.stepSource)).toEqual(['order']);
    expect(s.stepsKnown).toBe(false);
  });
  it('rc5/model.safetensors named as a file: no step 5 (a checkpoint-5 folder would say so)', async () => {
    const d = dir('rc5');
    const p = put(join(d, 'model.safetensors'), simpleCkpt([1]));
    expect((await discoverSeries([p])).checkpoints[0].stepSource).toBe('order');
    const k = dir('checkpoint-5');
    const q = put(join(k, 'model.safetensors'), simpleCkpt([1]));
    expect((await discoverSeries([q])).checkpoints.map((c) => [c.step, c.stepSource])).toEqual([[5, 'name']]);
  });
  it("rc5/ as a run: the steps are its checkpoints' own", async () => {
    const d = dir('rc5');
    for (const s of [100, 200]) put(join(d, `model_${s}.safetensors`), simpleCkpt([s]));
    expect((await discoverSeries([d])).checkpoints.map((c) => c.step)).toEqual([100, 200]);
  });
});

describe('a checkpoint without a step among checkpoints with steps', () => {
  it('in a run folder: refused, naming the file and what to do', async () => {
    const d = dir();
    for (const s of [100, 200]) put(join(d, `ckpt_step_${s}.safetensors`), simpleCkpt([s]));
    const odd = put(join(d, 'final.safetensors'), simpleCkpt([1]));
    const e = await failure(discoverSeries([d]));
    expect(e.code).toBe('missing-step');
    expect(e.file).toBe(odd);
    expect(e.message).toContain('move it out');
  });
  it("matched by a glob: refused too (a glob's order is only text order)", async () => {
    const d = dir();
    put(join(d, 'ckpt_step_100.safetensors'), simpleCkpt([1]));
    const odd = put(join(d, 'best.safetensors'), simpleCkpt([1]));
    const e = await failure(discoverSeries([join(d, '*.safetensors')]));
    expect([e.code, e.file]).toEqual(['missing-step', odd]);
  });
  it('named explicitly: the order given is kept, with a note', async () => {
    const d = dir();
    const paths = [
      put(join(d, 'ckpt_step_100.safetensors'), simpleCkpt([1])),
      put(join(d, 'best.safetensors'), simpleCkpt([1])),
    ];
    const s = await discoverSeries(paths);
    expect(s.checkpoints.map((c) => [c.path, c.step, c.stepSource])).toEqual([
      [paths[0], 1, 'order'],
      [paths[1], 2, 'order'],
    ]);
    expect(s.notes.join('\n')).toContain(paths[1]);
  });
});

describe("avg-ckpt's own outputs are not training checkpoints", () => {
  it('an earlier lawa8.safetensors inside the run is left out with a note, not read as step 8', async () => {
    const d = dir();
    for (const s of [1, 2, 3]) put(join(d, `ckpt_step_${s}.safetensors`), simpleCkpt([s]));
    const avg = put(join(d, 'lawa8.safetensors'), simpleCkpt([2], AVERAGE));
    const s = await discoverSeries([d]);
    expect(s.checkpoints.map((c) => c.step)).toEqual([1, 2, 3]);
    expect(s.notes).toHaveLength(1);
    expect(s.notes[0]).toContain(avg);
    expect(s.notes[0]).toContain('lawa-8');
  });
  it('an average named explicitly is read (the user asked for it)', async () => {
    const avg = put(join(dir(), 'lawa8.safetensors'), simpleCkpt([2], AVERAGE));
    expect((await discoverSeries([avg])).checkpoints.map((c) => c.path)).toEqual([avg]);
  });
  it('a run of nothing but averages: no-checkpoints', async () => {
    const d = dir();
    put(join(d, 'lawa8.safetensors'), simpleCkpt([2], AVERAGE));
    expect((await failure(discoverSeries([d]))).code).toBe('no-checkpoints');
  });
});

describe('several run folders work like a glob over both', () => {
  it('runA runB: one series in step order', async () => {
    const a = dir('runA');
    const b = dir('runB');
    for (const s of [300, 100]) put(join(a, `checkpoint-${s}`, 'model.safetensors'), simpleCkpt([s]));
    for (const s of [400, 200]) put(join(b, `ckpt_step_${s}.safetensors`), simpleCkpt([s]));
    expect((await discoverSeries([a, b])).checkpoints.map((c) => c.step)).toEqual([100, 200, 300, 400]);
  });
  it('the same step in both: duplicate-step naming both', async () => {
    const a = dir('runA');
    const b = dir('runB');
    put(join(a, 'ckpt_step_100.safetensors'), simpleCkpt([1]));
    put(join(b, 'ckpt_step_100.safetensors'), simpleCkpt([2]));
    const e = await failure(discoverSeries([a, b]));
    expect(e.code).toBe('duplicate-step');
    expect(e.oneLine()).toContain(join(a, 'ckpt_step_100.safetensors'));
    expect(e.oneLine()).toContain(join(b, 'ckpt_step_100.safetensors'));
  });
});

describe('merge --dry-run lists the checkpoints with weight', () => {
  async function run(args: string[]): Promise<{ code: number | null; out: string }> {
    const r = await runCli(args, { inProcess: true });
    return { code: r.code, out: r.stdout };
  }
  it('--json: the 5 of lawa-5, not all 60', async () => {
    const { code, out } = await run([
      'merge',
      'fixtures/runs/digits-mlp/run',
      '--method',
      'lawa',
      '--k',
      '5',
      '--dry-run',
      '--json',
    ]);
    expect(code, out).toBe(0);
    const json = JSON.parse(out) as { selected: number; checkpoints: { step: number; weight: number }[] };
    expect(json.selected).toBe(60);
    expect(json.checkpoints.map((c) => c.step)).toEqual([1120, 1140, 1160, 1180, 1200]);
    expect(json.checkpoints.every((c) => c.weight === 0.2)).toBe(true);
  });
  it('the table: "5 of 60", then 5 lines', async () => {
    const { code, out } = await run([
      'merge',
      'fixtures/runs/digits-mlp/run',
      '--method',
      'lawa',
      '--k',
      '5',
      '--dry-run',
    ]);
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('lawa-5: 5 of 60 selected checkpoints carry weight');
    expect(lines).toHaveLength(6);
  });
});
