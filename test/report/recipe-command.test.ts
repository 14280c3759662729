/**
 * The reproducing command must write the same average: each command is run through the real
 * `merge --dry-run --json` and its weights compared with the vector it was made from.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { ema, emaPerStep } from '../../src/recipes/ema.js';
import { lawa, raw } from '../../src/recipes/lawa.js';
import { phema } from '../../src/recipes/phema.js';
import { uniform } from '../../src/recipes/uniform.js';
import { weightVector, type WeightVector } from '../../src/recipes/weight-vector.js';
import { formatCommand, mergeCommandFor, shellWord } from '../../src/report/recipe-command.js';
import type { SelectionOptions } from '../../src/series/select.js';

const RUN = 'fixtures/runs/digits-mlp/run';
afterEach(() => vi.restoreAllMocks());

/** Runs `words` (an `avg-ckpt merge ... -o X` command) as a dry run; returns step -> weight. */
async function dryRunWeights(words: string[]): Promise<Map<number, number>> {
  const args = words.slice(1, words.indexOf('-o'));
  const { code, stdout: out } = await runCli([...args, '--dry-run', '--json'], { inProcess: true });
  expect(code, out).toBe(0);
  const json = JSON.parse(out) as { checkpoints: { step: number; weight: number }[] };
  return new Map(json.checkpoints.map((c) => [c.step, c.weight]));
}

// Steps of the run under each selection, counted from the fixture's 20..1200 every 20.
const ALL = Array.from({ length: 60 }, (_, i) => 20 * (i + 1));
// Every method under one selection with all the flags' kinds; the other selections with two methods.
const cases: { selection: SelectionOptions; steps: number[]; only?: string[] }[] = [
  { selection: { fromStep: 600, every: 3 }, steps: ALL.filter((s) => s >= 600 && ((1200 - s) / 20) % 3 === 0) },
  { selection: {}, steps: ALL, only: ['lawa-5', 'greedy-soup-4'] },
  {
    selection: { toStep: 1000, last: 12 },
    steps: ALL.filter((s) => s <= 1000).slice(-12),
    only: ['ema-0.9', 'greedy-soup-4'],
  },
];

describe('mergeCommandFor', () => {
  for (const { selection, steps, only } of cases) {
    const soup = weightVector(
      'greedy-soup-4',
      'greedy-soup',
      { k: 4, members: 2 },
      steps,
      steps.map((_, i) => (i === steps.length - 1 || i === steps.length - 3 ? 0.5 : 0)),
    );
    const vectors: WeightVector[] = [
      lawa(steps, 5),
      ema(steps, 0.9),
      emaPerStep(steps, 0.995),
      phema(steps, 0.05),
      uniform(steps),
      uniform(steps, steps[steps.length - 4]),
      raw(steps, steps[1]),
      soup,
    ];
    for (const v of vectors.filter((x) => only === undefined || only.includes(x.name))) {
      it(`${v.name} under ${JSON.stringify(selection)}`, async () => {
        const words = mergeCommandFor([RUN], selection, v);
        expect(words.slice(0, 3)).toEqual(['avg-ckpt', 'merge', RUN]);
        const got = await dryRunWeights(words);
        // the command may select fewer steps, but only ones the vector gives no weight
        for (const s of got.keys()) expect(steps).toContain(s);
        steps.forEach((s, i) => expect(got.get(s) ?? 0).toBeCloseTo(v.weights[i], 10));
      });
    }
  }

  it('names the method in readable flags where the method is a function of the selection', () => {
    const steps = [10, 20, 30];
    expect(mergeCommandFor(['run'], { last: 3 }, lawa(steps, 2), 'out.safetensors')).toEqual([
      'avg-ckpt',
      'merge',
      'run',
      '--last',
      '3',
      '--method',
      'lawa',
      '--k',
      '2',
      '-o',
      'out.safetensors',
    ]);
    expect(mergeCommandFor(['run'], { last: 3 }, raw(steps, 20))).toEqual([
      'avg-ckpt',
      'merge',
      'run',
      '--from-step',
      '20',
      '--to-step',
      '20',
      '--method',
      'uniform',
      '-o',
      'averaged.safetensors',
    ]);
  });

  it('narrows spelled-out weights to the steps that carry weight, unless --every fixes the spacing', () => {
    const steps = [10, 20, 30, 40, 50];
    const soup = weightVector('greedy-soup-4', 'greedy-soup', { k: 4, members: 2 }, steps, [0, 0.5, 0, 0.5, 0]);
    expect(mergeCommandFor(['run'], { fromStep: 10 }, soup).slice(3, -2)).toEqual([
      '--from-step',
      '20',
      '--to-step',
      '40',
      '--method',
      'weights',
      '--weights',
      '1,0,1',
    ]);
    expect(mergeCommandFor(['run'], { every: 2 }, soup).slice(3, -2)).toEqual([
      '--every',
      '2',
      '--method',
      'weights',
      '--weights',
      '0,1,0,1,0',
    ]);
    expect(mergeCommandFor(['run'], {}, uniform(steps, 30)).slice(3, -2)).toEqual([
      '--from-step',
      '30',
      '--to-step',
      '50',
      '--method',
      'uniform',
    ]);
  });
});

describe('shell quoting', () => {
  it('quotes only words that need it', () => {
    expect(shellWord('runs/exp-1/ckpt_2.safetensors')).toBe('runs/exp-1/ckpt_2.safetensors');
    expect(shellWord('runs/*/ckpt')).toBe("'runs/*/ckpt'");
    expect(shellWord("it's here")).toBe(`'it'\\''s here'`);
    expect(formatCommand(['avg-ckpt', 'merge', 'my run', '-o', 'a b'])).toBe("avg-ckpt merge 'my run' -o 'a b'");
  });
});
