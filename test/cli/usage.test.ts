/**
 * Usage errors in the tool's words: one line, exit 2, a suggestion where one is near, nothing
 * written; and the library's own errors for the same slips (AvgCkptError, no CLI flags).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AvgCkptError } from '../../src/errors.js';
import { vectorFromSpec } from '../../src/recipes/from-spec.js';
import { runCli } from '../helpers/cli.js';

const MLP = 'fixtures/runs/digits-mlp';
const SCORING = ['--onnx', `${MLP}/model.onnx`, '--data', MLP, '--device', 'cpu', '--quiet'];
const dir = mkdtempSync(join(tmpdir(), 'avg-ckpt-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs in this process; expects exit 2 and returns the first stderr line. */
async function usage(args: string[]): Promise<string> {
  const r = await runCli(args, { inProcess: true });
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines[1]).toBe('Run avg-ckpt --help for usage.');
  return lines[0];
}

describe('usage errors name the nearest right word', () => {
  it.each([
    [
      ['mrege', `${MLP}/run`],
      'avg-ckpt: unknown command mrege; did you mean merge? (commands: inspect, merge, sweep-window, curve, report)',
    ],
    [
      ['sweepwindow', `${MLP}/run`],
      'avg-ckpt: unknown command sweepwindow; did you mean sweep-window? (commands: inspect, merge, sweep-window, curve, report)',
    ],
    [
      ['sweep-window', `${MLP}/run`, ...SCORING, '--window', '2'],
      'avg-ckpt: unknown option --window for sweep-window; did you mean --windows?',
    ],
    [
      ['curve', `${MLP}/run`, ...SCORING, '--windows', '2'],
      'avg-ckpt: unknown option --windows for curve; did you mean --window?',
    ],
    [
      ['merge', `${MLP}/run`, '--dry-run', '--las', '3'],
      'avg-ckpt: unknown option --las for merge; did you mean --last?',
    ],
    [
      ['merge', `${MLP}/run`, '--method', 'lawaa', '--dry-run'],
      'avg-ckpt: unknown method lawaa; did you mean lawa? (methods: lawa, ema, uniform, weights, phema)',
    ],
  ])('%j', async (args, line) => {
    expect(await usage(args)).toBe(line);
  });

  it('method names are case-insensitive', async () => {
    const r = await runCli(['merge', `${MLP}/run`, '--method', 'LaWa', '--k', '2', '--dry-run', '--json'], {
      inProcess: true,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).name).toBe('lawa-2');
  });
});

describe('the library: AvgCkptError for an unknown method, in its own words', () => {
  it('names the nearest method and mentions no CLI flag', () => {
    let caught: unknown;
    try {
      vectorFromSpec({ method: 'emaa' }, [1, 2, 3], true);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(AvgCkptError);
    expect((caught as AvgCkptError).code).toBe('usage');
    expect((caught as AvgCkptError).message).toBe(
      'unknown method emaa; did you mean ema? (methods: lawa, ema, uniform, weights, phema)',
    );
    expect((caught as AvgCkptError).message).not.toContain('--');
  });
});

describe('outputs that cannot be what they are named', () => {
  it('--plot x.png: refused before scoring, nothing written', async () => {
    const png = join(dir, 'chart.png');
    expect(await usage(['sweep-window', `${MLP}/run`, ...SCORING, '--windows', '2', '--plot', png])).toBe(
      `avg-ckpt: ${png}: the chart is written as SVG, not PNG: give it a .svg name`,
    );
    expect(await usage(['curve', `${MLP}/run`, ...SCORING, '--window', '2', '--plot', png])).toBe(
      `avg-ckpt: ${png}: the chart is written as SVG, not PNG: give it a .svg name`,
    );
    expect(existsSync(png)).toBe(false);
  });

  it('--shard-size with a single-file output: refused, nothing written', async () => {
    const out = join(dir, 'one.safetensors');
    expect(await usage(['merge', `${MLP}/run`, '--last', '2', '-o', out, '--shard-size', '1MB'])).toBe(
      `avg-ckpt: ${out}: a shard size applies to a folder output, and this is one file (end the name with / for a folder)`,
    );
    expect(existsSync(out)).toBe(false);
  });
});
