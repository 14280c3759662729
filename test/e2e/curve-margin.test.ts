/**
 * `curve` says how sure each point is: at every evaluated step of the bundled MLP run, the best
 * average there against the raw checkpoint, with the paired bootstrap interval recomputed here
 * from per-row losses of the materialize engine (the CLI scored with the mixture) by a plain
 * reimplementation; in the table, the JSON report and the page.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plainBootstrap, rowLosses, type RowLosses } from '../helpers/bootstrap-reference.js';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/st-bytes.js';

const MLP = join(ROOT, 'fixtures', 'runs', 'digits-mlp');
const tmp = tempDir('avg-ckpt-e2e-curve-margin-');
afterAll(tmp.cleanup);

interface StepMargin {
  step: number;
  best: string;
  against: string;
  margin: number;
  low: number;
  high: number;
  distinguishable: boolean;
}
interface Report {
  steps: number[];
  methods: {
    name: string;
    method: string;
    params: Record<string, number>;
    points: { step: number; metrics: Record<string, number> }[];
  }[];
  margin: { metric: string; resamples: number; seed: number; level: number; rows: number; points: StepMargin[] };
}

let losses: RowLosses;
beforeAll(async () => {
  ensureBuilt();
  losses = await rowLosses(MLP);
});
afterAll(async () => losses?.close());

/** The weights of lawa-k or ema-g ending at step index i, written out from their definitions. */
function weightsAt(method: { method: string; params: Record<string, number> }, i: number): [number[], number[]] {
  const steps = losses.steps.slice(0, i + 1);
  if (method.method === 'lawa') {
    const k = method.params.k;
    return [steps.slice(-k), steps.slice(-k).map(() => 1 / k)];
  }
  const g = method.params.decay;
  // ema_1 = theta_1, ema_j = g ema_(j-1) + (1 - g) theta_j: w_1 = g^(n-1), w_j = (1 - g) g^(n-j)
  return [steps, steps.map((_, j) => (j === 0 ? g ** i : (1 - g) * g ** (i - j)))];
}

describe('curve margin on digits-mlp', () => {
  it('gives, at each evaluated step, the best average against the raw checkpoint with its interval', async () => {
    const report = join(tmp.dir, 'curve.json');
    const html = join(tmp.dir, 'curve.html');
    const onnx = ['--onnx', join(MLP, 'model.onnx'), '--data', MLP, '--device', 'cpu'];
    const averages = '--window 5 --ema 0.9 --every 20'.split(' ');
    const r = await runCli(['curve', join(MLP, 'run'), ...onnx, ...averages, '--report', report, '--html', html]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(readFileSync(report, 'utf8')) as Report;
    expect(j.steps).toEqual([400, 800, 1200]);
    expect(j.margin).toMatchObject({ metric: 'loss', resamples: 1000, seed: 1, level: 0.95, rows: 500 });
    expect(j.margin.points.map((p) => p.step)).toEqual(j.steps);
    const rawLoss = (step: number) => j.methods[0].points.find((p) => p.step === step)!.metrics.loss;
    for (const p of j.margin.points) {
      // the best average is the one with the lowest loss at that step
      const averages = j.methods
        .slice(1)
        .map((m) => ({ m, loss: m.points.find((x) => x.step === p.step)!.metrics.loss }));
      const best = averages.reduce((a, b) => (b.loss < a.loss ? b : a));
      expect(p.best).toBe(best.m.name);
      expect(p.against).toBe('raw');
      expect(p.margin).toBeCloseTo(best.loss - rawLoss(p.step), 12);
      // the interval from the other engine's per-row losses and a plain bootstrap
      const i = losses.steps.indexOf(p.step);
      const a = await losses.rowLoss(...weightsAt(best.m, i));
      const b = await losses.rowLoss([p.step], [1]);
      const [lo, hi] = plainBootstrap(
        a,
        b,
        Array.from({ length: 500 }, (_, k) => k),
        1,
        1000,
      );
      expect(Math.abs(p.low - lo), `${p.step} low`).toBeLessThan(1e-7);
      expect(Math.abs(p.high - hi), `${p.step} high`).toBeLessThan(1e-7);
      expect(p.distinguishable).toBe(lo > 0 || hi < 0);
    }
    // the raw model at 1200 (0.295) is far worse than lawa-5 (0.058): the interval is well below zero
    const last = j.margin.points[2];
    expect(last).toMatchObject({ step: 1200, best: 'lawa-5', distinguishable: true });
    expect(r.stdout).toContain(
      `margin at step 1200: lawa-5 over raw: loss ${last.margin.toPrecision(3)}, 95% interval [`,
    );
    expect(r.stdout).toContain(': better than raw on this data\n');
    const better = j.margin.points.filter((p) => p.distinguishable && p.margin < 0).length;
    const same = j.margin.points.filter((p) => !p.distinguishable).length;
    expect(r.stdout).toContain(
      `the best average at each step is better than the raw checkpoint at ${better} of the 3 steps with a margin, ` +
        `not distinguishable at ${same}, worse at ${3 - better - same}`,
    );
    expect(r.stdout).toContain('(paired bootstrap: 1000 resamples of the 500 validation rows, seed 1)');
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<th>best average</th><th>margin over raw</th><th>95% interval</th><th>verdict</th>');
    expect(page).toMatch(
      new RegExp(
        '<td class="num">1200</td>(<td class="num">[^<]+</td>){3}<td>lawa-5</td><td class="num">-0\\.2\\d+</td>' +
          '<td>\\[-0\\.\\d+, -0\\.\\d+\\]</td><td>better than raw on this data</td>',
      ),
    );
  }, 60_000);

  it('has no margin with --eval-cmd (a command gives no per-row values), and says why', async () => {
    const evalCmd = `node test/helpers/digits-mlp-eval.mjs {path} ${MLP}`;
    const args = ['curve', join(MLP, 'run'), '--window', '5', '--every', '30', '--eval-cmd', evalCmd];
    const [json, text] = await Promise.all([runCli([...args, '--json']), runCli(args)]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).margin).toBeUndefined();
    expect(text.stdout).toContain(
      '\nno margin interval: an evaluation command (--eval-cmd) reports no per-row values\n',
    );
  }, 60_000);
});
