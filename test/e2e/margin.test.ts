/**
 * Issue 10.5 end to end on the bundled CNN run: `--greedy 10` is reported best at -1.5% loss,
 * chosen on the rows it is scored on. The report must say how sure that pick is: the paired
 * bootstrap interval of its margin (recomputed here in float64 from per-row losses the
 * materialize engine gives, while the CLI scored with the mixture), the optimistic mark, and
 * with --holdout a choice on one half of the rows reported on the other.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdoutSplit } from '../../src/analysis/bootstrap.js';
import { plainBootstrap, rowLosses, type RowLosses } from '../helpers/bootstrap-reference.js';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/st-bytes.js';

const CNN = join(ROOT, 'fixtures', 'runs', 'digits-cnn-fp16');
const tmp = tempDir('avg-ckpt-e2e-margin-');
afterAll(tmp.cleanup);

interface Report {
  best: string;
  baseline: string;
  candidates: {
    name: string;
    steps: number[];
    weights: number[];
    metrics: Record<string, number>;
    optimistic?: boolean;
    choice_metrics?: Record<string, number>;
  }[];
  margin: {
    metric: string;
    resamples: number;
    seed: number;
    level: number;
    rows: number;
    over_baseline?: { against: string; margin: number; low: number; high: number; distinguishable: boolean };
    over_runner_up?: { against: string };
  };
  holdout?: { choose_rows: number; report_rows: number };
}

/** Per-row losses of a candidate, from the materialize engine (the CLI runs used the mixture). */
let losses: RowLosses;
const rowLoss = (steps: number[], weights: number[]) => losses.rowLoss(steps, weights);
beforeAll(async () => {
  ensureBuilt();
  losses = await rowLosses(CNN);
});
afterAll(async () => losses?.close());

describe('the margin of the winner on digits-cnn-fp16 --greedy 10', () => {
  it('is an interval around -0.000278 that holds zero: not distinguishable from raw-600; the soup is marked optimistic', async () => {
    const report = join(tmp.dir, 'cnn.json');
    const html = join(tmp.dir, 'cnn.html');
    const r = await runCli([
      'sweep-window',
      join(CNN, 'run'),
      '--onnx',
      join(CNN, 'model.onnx'),
      '--data',
      CNN,
      '--greedy',
      '10',
      '--device',
      'cpu',
      '--report',
      report,
      '--html',
      html,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(j.best).toBe('greedy-soup-10');
    const soup = j.candidates.find((c) => c.name === 'greedy-soup-10')!;
    const base = j.candidates.find((c) => c.name === 'raw-600')!;
    expect(soup.optimistic).toBe(true);
    expect(j.candidates.filter((c) => c.optimistic)).toHaveLength(1);
    expect(j.margin).toMatchObject({ metric: 'loss', resamples: 1000, level: 0.95, rows: 500 });
    const m = j.margin.over_baseline!;
    expect(m.against).toBe('raw-600');
    expect(m.margin).toBeCloseTo(soup.metrics.loss - base.metrics.loss, 12);
    expect(m.margin).toBeCloseTo(-0.000278, 6);
    // the same interval, from per-row losses of the other engine and a plain reimplementation
    const a = await rowLoss(soup.steps, soup.weights);
    const b = await rowLoss([600], [1]);
    const [lo, hi] = plainBootstrap(
      a,
      b,
      Array.from({ length: 500 }, (_, i) => i),
      j.margin.seed,
      1000,
    );
    expect(Math.abs(m.low - lo)).toBeLessThan(1e-7);
    expect(Math.abs(m.high - hi)).toBeLessThan(1e-7);
    expect(lo < 0 && hi > 0).toBe(true);
    expect(m.distinguishable).toBe(false);
    // the runner-up is the baseline here: one sentence for both
    expect(j.margin.over_runner_up!.against).toBe('raw-600');
    expect(r.stdout).toContain('margin over raw-600 (baseline and runner-up): loss -0.000278, 95% interval [');
    expect(r.stdout).toContain('not distinguishable from raw-600 on this data');
    expect(r.stdout).toMatch(/^\* greedy-soup-10 \[optimistic\] /m);
    expect(r.stdout).toContain('[optimistic] greedy-soup-10 chose its members on the same rows it is scored on');
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('greedy-soup-10 [optimistic]');
    expect(page).toContain('not distinguishable from raw-600 on this data');
  });

  it('--holdout 0.5: the soup chooses on 250 rows, every number is on the other 250, nothing is marked optimistic', async () => {
    const report = join(tmp.dir, 'holdout.json');
    const r = await runCli([
      'sweep-window',
      join(CNN, 'run'),
      '--onnx',
      join(CNN, 'model.onnx'),
      '--data',
      CNN,
      '--greedy',
      '10',
      '--windows',
      '2,4',
      '--ema',
      '0.5',
      '--holdout',
      '0.5',
      '--device',
      'cpu',
      '--report',
      report,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(j.holdout).toMatchObject({ choose_rows: 250, report_rows: 250 });
    expect(j.candidates.some((c) => c.optimistic)).toBe(false);
    expect(j.margin.rows).toBe(250);
    const { choose, report: held } = holdoutSplit(500, 0.5);
    const mean = (x: Float64Array, rows: Int32Array) => rows.reduce((s, i) => s + x[i], 0) / rows.length;
    for (const c of j.candidates) {
      const x = await rowLoss(c.steps, c.weights);
      expect(Math.abs(c.metrics.loss - mean(x, held))).toBeLessThan(1e-6);
      expect(Math.abs(c.choice_metrics!.loss - mean(x, choose))).toBeLessThan(1e-6);
    }
    // the winner is the best on the choosing rows, whatever it scores on the held-out ones
    const chosen = [...j.candidates].sort((x, y) => x.choice_metrics!.loss - y.choice_metrics!.loss)[0];
    expect(j.best).toBe(chosen.name);
    expect(r.stdout).toContain(
      'holdout: the winner was chosen on 250 rows; every number above is on the other 250 (--holdout 0.5)',
    );
    const bad = await runCli([
      'sweep-window',
      join(CNN, 'run'),
      '--onnx',
      join(CNN, 'model.onnx'),
      '--data',
      CNN,
      '--holdout',
      '1.5',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--holdout takes the share of validation rows to hold out, between 0 and 1');
  });
});
