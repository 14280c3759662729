/** CommandScorer: candidates written as --write-best writes them, scored by an external command, removed. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { AvgCkptError } from '../../src/errors.js';
import { checkScratchSpace, CommandScorer, type CommandScorerOptions } from '../../src/eval/command-scorer.js';
import { CandidateFailed, outcomeOf, scoreEach, type Outcome } from '../../src/eval/scorer.js';
import { mergeToOutput } from '../../src/engine/merge.js';
import { FilePool } from '../../src/io/storage/file-pool.js';
import { ema } from '../../src/recipes/ema.js';
import { lawa, raw } from '../../src/recipes/lawa.js';
import { discoverSeries } from '../../src/series/discover.js';
import { selectCheckpoints } from '../../src/series/select.js';
import { ownError, ownErrorAsync } from '../helpers/own-errors.js';
import { f32, readRef, values } from '../helpers/st-reference.js';

const MLP = 'fixtures/runs/digits-mlp';
const EVAL = 'test/helpers/digits-mlp-eval.mjs';
const BAD = 'test/helpers/misbehaving-eval.mjs';
const mlp = (
  oracle as unknown as {
    cases: Record<
      string,
      { lawa_end: Record<string, { loss: number; accuracy: number }>; ema_end: Record<string, { loss: number }> }
    >;
  }
).cases['digits-mlp'];
const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-cmdscorer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const selected = async () => selectCheckpoints((await discoverSeries([`${MLP}/run`])).checkpoints, { last: 16 });
let n = 0;
async function scorer(command: string, opts: Partial<CommandScorerOptions> = {}): Promise<CommandScorer> {
  const scratch = join(tmp, `s${n++}`);
  mkdirSync(scratch);
  return CommandScorer.create({ command, checkpoints: await selected(), scratch, ...opts });
}

describe('CommandScorer', () => {
  it('scores LAWA and EMA candidates with an independent evaluation: the oracle losses to 1e-6', async () => {
    const s = await scorer(`node ${EVAL} {path} ${MLP}`);
    const steps = (await selected()).map((c) => c.step);
    const m8 = await s.score(lawa(steps, 8));
    expect(Math.abs(m8.loss - mlp.lawa_end['8'].loss)).toBeLessThan(1e-6);
    expect(m8.accuracy).toBeCloseTo(mlp.lawa_end['8'].accuracy, 6);
    expect(Math.abs((await s.score(lawa(steps, 3))).loss - mlp.lawa_end['3'].loss)).toBeLessThan(1e-6);
    expect(s).toMatchObject({ rankMetric: 'loss', direction: 'min', device: 'external', engineKind: 'command' });
    expect(s.notes[0]).toMatch(/candidates are written to .*avg-ckpt-eval-.* and removed once scored/);
    const folder = /written to (\S+)/.exec(s.notes[0])![1];
    expect(readdirSync(folder)).toEqual([]); // each candidate removed once scored
    await s.close();
    expect(existsSync(folder)).toBe(false);
  });

  it('writes each candidate as --write-best would (a folder like the input), {step} substituted; --keep keeps it', async () => {
    const steps = (await selected()).map((c) => c.step);
    const t = await scorer(
      `node -e "console.log(JSON.stringify({loss:require('fs').readdirSync(process.argv[1]).length,step:Number(process.argv[2])}))" {path} {step}`,
      { keep: true },
    );
    expect(await t.score(raw(steps, 1100))).toEqual({ loss: 1, step: 1100 });
    const folder = /written to (\S+) and kept/.exec(t.notes[0])![1];
    expect(readdirSync(folder)).toEqual(['raw-1100']);
    expect(readdirSync(join(folder, 'raw-1100'))).toEqual(['model.safetensors']);
    await t.close();
    expect(existsSync(folder)).toBe(true); // --keep
  });

  it('each failure is one CandidateFailed line: timeout, exit code with stderr, no output, no metric, garbage, no "loss"', async () => {
    const steps = (await selected()).map((c) => c.step);
    const rules = [
      'lawa-2=exit',
      'lawa-3=sleep',
      'lawa-4=silent',
      'lawa-5=garbage',
      'lawa-6=words',
      'lawa-7=other',
      'lawa-9=number',
    ];
    const notes: string[] = [];
    // no timeout here: a loaded machine can take seconds to start node; the timeout has its own case below
    const s = await scorer(`node ${BAD} {name} {path} ${MLP} ${rules.join(' ')}`, { onNote: (l) => notes.push(l) });
    const outcomes: Outcome[] = [];
    await scoreEach(
      s,
      [2, 4, 5, 6, 7, 9, 8].map((k) => lawa(steps, k)),
      (i, o) => (outcomes[i] = o),
    );
    const slow = await scorer(`node ${BAD} {name} {path} ${MLP} lawa-3=sleep`, {
      timeoutSeconds: 1,
      onNote: (l) => notes.push(l),
    });
    outcomes.splice(1, 0, await outcomeOf(slow, lawa(steps, 3)));
    await slow.close();
    const failed = outcomes.map((o) => ('failed' in o ? o.failed : undefined));
    expect(failed).toEqual([
      'the command exited with code 3: RuntimeError: CUDA out of memory',
      'the command timed out after 1 s (--eval-timeout)',
      'the command printed nothing on stdout (expected a JSON object of metrics, or a number, as its last line)',
      `the command printed a last line that is not a valid JSON object: '{"loss": 0.5,'`,
      "the command printed no metric: its last line is 'evaluation done.', not a JSON object or a number",
      'the command printed no "loss" (its metrics: acc); name the ranking metric with --metric',
      undefined,
      undefined,
    ]);
    expect(outcomes[6]).toMatchObject({ metrics: { loss: 0.125 } });
    // the others' results are kept
    expect(
      Math.abs((outcomes[7] as { metrics: Record<string, number> }).metrics.loss - mlp.lawa_end['8'].loss),
    ).toBeLessThan(1e-6);
    expect(notes.slice(0, 3)).toEqual([
      'lawa-2: the command exited with code 3: RuntimeError: CUDA out of memory',
      '  | Traceback (most recent call last):',
      '  |   File "eval.py", line 3, in <module>',
    ]);
    expect(notes.filter((l) => !l.startsWith('  |'))).toHaveLength(6);
    expect(notes).toContain('lawa-3: the command timed out after 1 s (--eval-timeout)');
    await s.close();
  }, 30_000);

  it('--jobs N evaluates N candidates at once (each waits until all N have started)', async () => {
    const steps = (await selected()).map((c) => c.step);
    const barrier = join(tmp, 'barrier');
    const rules = [2, 3, 4].map((k) => `lawa-${k}=barrier:${barrier}:3`);
    const s = await scorer(`node ${BAD} {name} {path} ${MLP} ${rules.join(' ')}`, { jobs: 3 });
    const outcomes: Outcome[] = [];
    await scoreEach(
      s,
      [2, 3, 4].map((k) => lawa(steps, k)),
      (i, o) => (outcomes[i] = o),
    );
    expect(outcomes.map((o) => ('metrics' in o ? o.metrics.loss : o.failed))).toEqual([1, 1, 1]);
    await s.close();
  });

  it('a program that does not exist stops the sweep (every candidate would fail the same way)', async () => {
    const s = await scorer('no-such-evaluator-xyz {path}');
    const steps = (await selected()).map((c) => c.step);
    const e = await s.score(ema(steps, 0.9)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AvgCkptError);
    expect(e).not.toBeInstanceOf(CandidateFailed);
    expect((e as AvgCkptError).message).toBe(
      '--eval-cmd: cannot run "no-such-evaluator-xyz": no such program (give its path, or check PATH)',
    );
    await s.close();
  });

  it('refuses bad options before writing anything: no {path}, --jobs, --eval-timeout, a metric of unknown direction', async () => {
    const checkpoints = await selected();
    const base = { command: 'eval {path}', checkpoints, scratch: tmp };
    expect(await ownErrorAsync(CommandScorer.create({ ...base, command: 'eval' }))).toBe('usage');
    expect(await ownErrorAsync(CommandScorer.create({ ...base, jobs: 0 }))).toBe('usage');
    expect(await ownErrorAsync(CommandScorer.create({ ...base, timeoutSeconds: -1 }))).toBe('usage');
    await expect(CommandScorer.create({ ...base, metric: 'f1' })).rejects.toThrow(
      '--metric f1: say whether higher or lower is better with --maximize or --minimize',
    );
    expect(await ownErrorAsync(CommandScorer.create({ ...base, scratch: join(tmp, 'missing') }))).toBe('io');
    const f1 = await CommandScorer.create({ ...base, metric: 'f1', direction: 'max' });
    expect(f1.better({ f1: 0.9 }, { f1: 0.8 })).toBe(true);
    await f1.close();
  });

  it('checks the scratch folder has room for the candidates evaluated at once', () => {
    expect(ownError(() => checkScratchSpace('/s', 10 * 2 ** 30, 4 * 2 ** 30, 2))).toBe('ok');
    expect(ownError(() => checkScratchSpace('/s', 10 * 2 ** 30, 4 * 2 ** 30, 3))).toBe('scratch-space');
    expect(() => checkScratchSpace('/s', 10 * 2 ** 30, 4 * 2 ** 30, 3)).toThrow(
      'has 10.00 GiB free, and 3 candidates at once (--jobs) need 12.00 GiB (4.00 GiB each): free some space, lower --jobs, or pass --scratch DIR on a larger disk',
    );
  });
});

describe('CommandScorer batches: --jobs candidates written in one pass over the checkpoints', () => {
  // a command that scores nothing: these tests are about what is written and read, not the metric
  const CONSTANT = 'sh -c "echo 1" {path}';
  const grid = (steps: number[]) => [
    lawa(steps, 2),
    lawa(steps, 4),
    ema(steps, 0.9),
    lawa(steps, 8),
    raw(steps, 1100),
    lawa(steps, 3),
  ];
  /** Tensor data bytes of each checkpoint file, read from its header by the test's own reader. */
  const dataBytes = (file: string) => Object.values(readRef(file).tensors).reduce((a, t) => a + t.bytes.byteLength, 0);
  /** Bytes read from each file through the one reader of tensor data, while `run` runs. */
  async function bytesReadBy(run: () => Promise<unknown>): Promise<Map<string, number>> {
    const read = vi.spyOn(FilePool.prototype, 'read');
    try {
      await run();
      const byFile = new Map<string, number>();
      for (const [path, , into, length] of read.mock.calls)
        byFile.set(path, (byFile.get(path) ?? 0) + (length ?? into.byteLength));
      return byFile;
    } finally {
      read.mockRestore();
    }
  }

  it('reads each checkpoint once per batch, where one merge per candidate read it once per candidate', async () => {
    const checkpoints = await selected();
    const steps = checkpoints.map((c) => c.step);
    const vectors = grid(steps);
    const fileOf = new Map(checkpoints.map((c) => [c.step, c.files[0]]));
    // each batch of 3 reads the checkpoints any of its vectors weighs, each whole, once
    const expected = new Map<string, number>();
    const separate = new Map<string, number>();
    for (const [i, v] of vectors.entries()) {
      for (const [j, s] of v.steps.entries()) {
        if (v.weights[j] === 0) continue;
        const file = fileOf.get(s)!;
        separate.set(file, (separate.get(file) ?? 0) + dataBytes(file));
        const batch = vectors.slice(i - (i % 3), i);
        const inBatchBefore = batch.some((b) => b.weights[b.steps.indexOf(s)] > 0);
        if (!inBatchBefore) expected.set(file, (expected.get(file) ?? 0) + dataBytes(file));
      }
    }
    const batched = await scorer(CONSTANT, { jobs: 3 });
    const outcomes: Outcome[] = [];
    const read = await bytesReadBy(() => scoreEach(batched, vectors, (i, o) => (outcomes[i] = o)));
    await batched.close();
    expect(outcomes.map((o) => ('metrics' in o ? o.metrics.loss : o.failed))).toEqual([1, 1, 1, 1, 1, 1]);
    expect(read).toEqual(expected);
    // the oldest checkpoints only the EMA weighs are read once; the newest, which every batch weighs, twice
    expect(read.get(fileOf.get(steps[0])!)).toBe(dataBytes(fileOf.get(steps[0])!));
    expect(read.get(fileOf.get(1200)!)).toBe(2 * dataBytes(fileOf.get(1200)!));
    // the same candidates one by one (the scorer's single-candidate path) read each once per candidate
    const single = await scorer(CONSTANT, { jobs: 3 });
    expect(await bytesReadBy(() => Promise.all(vectors.map((v) => outcomeOf(single, v))))).toEqual(separate);
    await single.close();
  });

  it('writes each candidate of a batch as the bytes of its own merge (and of a float64 reference)', async () => {
    const checkpoints = await selected();
    const steps = checkpoints.map((c) => c.step);
    const vectors = grid(steps);
    const s = await scorer(CONSTANT, { jobs: 4, keep: true });
    await scoreEach(s, vectors, () => undefined);
    await s.close();
    const folder = /written to (\S+) and kept/.exec(s.notes[0])![1];
    expect(readdirSync(folder).sort()).toEqual(vectors.map((v) => v.name).sort());
    for (const v of vectors) {
      const alone = join(tmp, `alone-${v.name}.safetensors`);
      await mergeToOutput(checkpoints, v, { output: alone });
      expect(readFileSync(join(folder, v.name, 'model.safetensors')).equals(readFileSync(alone)), v.name).toBe(true);
    }
    // lawa-4, by hand: the float64 mean of the 4 newest checkpoints' values, rounded once to float32
    const newest = checkpoints.slice(-4).map((c) => readRef(c.files[0]).tensors);
    const written = readRef(join(folder, 'lawa-4', 'model.safetensors')).tensors;
    for (const name of Object.keys(newest[0])) {
      const inputs = newest.map((t) => values(t[name]));
      const mean = inputs[0].map((_, k) => f32(inputs.reduce((a, x) => a + x[k], 0) / 4));
      expect(values(written[name]), name).toEqual(mean);
    }
  });

  it('a command that cannot start stops the sweep after its batch, and leaves no candidate on disk', async () => {
    const checkpoints = await selected();
    const s = await scorer('no-such-evaluator-xyz {path}', { jobs: 3 });
    const e = await scoreEach(s, grid(checkpoints.map((c) => c.step)), () => undefined).catch((x: unknown) => x);
    expect(e).not.toBeInstanceOf(CandidateFailed);
    expect((e as AvgCkptError).message).toMatch(/cannot run "no-such-evaluator-xyz"/);
    expect(readdirSync(/written to (\S+)/.exec(s.notes[0])![1])).toEqual([]);
    await s.close();
  });
});
