/**
 * Issue 10.2 end to end: an output that is, holds or lies inside an input is refused with or
 * without --force, exit 1, one line naming both, nothing written and every input byte unchanged.
 */
import { cpSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT, runCli, snapshot } from '../helpers/cli.js';
import { tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir('avg-ckpt-e2e-guard-');
const base = join(tmp.dir, 'work', 'digits');
const run = join(base, 'run');
const model = join(base, 'model.onnx');
const labels = join(base, 'val_labels.npy');
const pixels = join(base, 'val_input.npy');
beforeAll(() => {
  ensureBuilt();
  cpSync(join(ROOT, 'fixtures', 'runs', 'digits-mlp'), base, { recursive: true });
});
afterAll(tmp.cleanup);

const sweep = (...extra: string[]) => [
  'sweep-window',
  run,
  '--onnx',
  model,
  '--input',
  `input=${pixels}`,
  '--labels',
  labels,
  '--windows',
  '2',
  ...extra,
];

/** Runs the command and checks the refusal: exit 1, one line naming the output and the input, inputs untouched. */
async function expectRefused(args: string[], output: string, input: string, notWritten: string[] = []) {
  const before = snapshot(base);
  const r = await runCli(args);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(output);
  expect(lines[0]).toContain(input);
  expect(lines[0]).toContain('an input is never replaced');
  expect(snapshot(base)).toEqual(before);
  for (const f of notWritten) expect(existsSync(f), f).toBe(false);
}

describe('the output guard, from the command line', () => {
  it('merge -o a checkpoint of the run that the selection left out, with --force', async () => {
    const victim = join(run, 'checkpoint-100');
    await expectRefused(['merge', run, '--last', '3', '-o', victim, '--force'], victim, victim);
  });

  it("merge -o the run's parent folder, and the run itself, with --force", async () => {
    await expectRefused(
      ['merge', run, '--last', '3', '-o', dirname(base), '--force'],
      dirname(base),
      join(run, 'checkpoint-'),
    );
    await expectRefused(['merge', run, '--last', '3', '-o', `${run}/`, '--force'], run, join(run, 'checkpoint-'));
  });

  it('sweep-window --emit-onnx the input model, with --force', async () => {
    await expectRefused(sweep('--emit-onnx', model, '--force'), model, model);
  });

  it('sweep-window --report the labels file, with --force, before the winner is written', async () => {
    const best = join(tmp.dir, 'best.safetensors');
    await expectRefused(sweep('--write-best', best, '--report', labels, '--force'), labels, labels, [best]);
  });

  it('sweep-window --html inside a checkpoint folder, --plot over the validation inputs, --write-best over the run', async () => {
    await expectRefused(
      sweep('--html', join(run, 'checkpoint-1200', 'page.html')),
      join(run, 'checkpoint-1200', 'page.html'),
      join(run, 'checkpoint-1200'),
    );
    await expectRefused(sweep('--plot', pixels, '--force'), pixels, pixels);
    await expectRefused(sweep('--write-best', run, '--force'), run, join(run, 'checkpoint-'));
  });

  it('sweep-window --data DIR: the labels found there, and a new report inside the folder', async () => {
    const found = join(base, 'val_labels.npy');
    await expectRefused(
      ['sweep-window', run, '--onnx', model, '--data', base, '--windows', '2', '--report', found, '--force'],
      found,
      `is the validation data ${found}`,
    );
    const inData = join(base, 'report.json');
    await expectRefused(
      ['sweep-window', run, '--onnx', model, '--data', base, '--windows', '2', '--report', inData],
      inData,
      `lies inside the validation data folder ${base}`,
      [inData],
    );
  });

  it('curve --report the model', async () => {
    await expectRefused(
      [
        'curve',
        run,
        '--onnx',
        model,
        '--input',
        `input=${pixels}`,
        '--labels',
        labels,
        '--window',
        '2',
        '--report',
        model,
      ],
      model,
      model,
    );
  });
});
