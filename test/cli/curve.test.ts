/**
 * `avg-ckpt curve` on the reference runs against the PyTorch oracle: the LAWA curve at step s is
 * the uniform mean of the k checkpoints ending at s (oracle `lawa_curve`), the raw curve is every
 * checkpoint (oracle `raw`), and the EMA curve ends at the oracle's `ema_end`. Loss within 1e-5,
 * accuracy exact (the oracle stores it as float32, so the correct count out of 500 is compared).
 * Time to target is worked out here from the oracle's numbers.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CurveReport } from '../../src/analysis/curve.js';
import { runCli, type RunResult } from '../helpers/cli.js';

const FIX = 'fixtures/runs/digits-mlp';
const DATA = [
  '--onnx',
  `${FIX}/model.onnx`,
  '--input',
  `input=${FIX}/val_input.npy`,
  '--labels',
  `${FIX}/val_labels.npy`,
  '--device',
  'cpu',
];
const ROWS = 500;
type OraclePoint = { step: number; loss: number; accuracy: number };
type OracleCase = {
  raw: OraclePoint[];
  lawa_curve: Record<string, OraclePoint[]>;
  ema_end: Record<string, OraclePoint>;
};
const cases = JSON.parse(readFileSync('fixtures/runs/oracle.json', 'utf8')).cases as Record<string, OracleCase>;
const oracle = cases['digits-mlp'];
const dir = mkdtempSync(join(tmpdir(), 'avg-ckpt-curve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const run = (args: string[]) => runCli(args, { inProcess: true });

function expectMatches(points: CurveReport['methods'][number]['points'], expected: OraclePoint[]) {
  expect(points.map((p) => p.step)).toEqual(expected.map((p) => p.step));
  points.forEach((p, i) => {
    expect(Math.abs(p.metrics.loss - expected[i].loss), `step ${p.step}`).toBeLessThan(1e-5);
    expect(Math.round(p.metrics.accuracy * ROWS), `step ${p.step}`).toBe(Math.round(expected[i].accuracy * ROWS));
  });
}

/** First oracle step at or below `target`. */
const firstAtOrBelow = (pts: OraclePoint[], target: number) => pts.find((p) => p.loss <= target)?.step ?? null;

describe('curve on digits-mlp', () => {
  let report: CurveReport;
  let out: RunResult;
  const files = { report: join(dir, 'curve.json'), plot: join(dir, 'curve.svg'), html: join(dir, 'curve.html') };

  beforeAll(async () => {
    out = await run([
      'curve',
      `${FIX}/run`,
      ...DATA,
      '--window',
      '5,10',
      '--ema',
      '0.9',
      '--report',
      files.report,
      '--plot',
      files.plot,
      '--html',
      files.html,
      '--quiet',
    ]);
    report = JSON.parse(readFileSync(files.report, 'utf8')) as CurveReport;
  });

  it('gives LAWA curves equal to the oracle lawa_curve, and the raw curve equal to the oracle raw', () => {
    expect(out.code, out.stderr).toBe(0);
    expect(report.methods.map((m) => [m.name, m.method, m.params])).toEqual([
      ['raw', 'raw', {}],
      ['lawa-5', 'lawa', { k: 5 }],
      ['lawa-10', 'lawa', { k: 10 }],
      ['ema-0.9', 'ema', { decay: 0.9 }],
    ]);
    expectMatches(report.methods[0].points, oracle.raw);
    expectMatches(report.methods[1].points, oracle.lawa_curve['5']);
    expectMatches(report.methods[2].points, oracle.lawa_curve['10']);
    // the EMA at the newest checkpoint is the oracle's EMA over the whole run
    const ema = report.methods[3].points;
    expect(ema.map((p) => p.step)).toEqual(oracle.raw.map((p) => p.step));
    expectMatches(ema.slice(-1), [{ ...oracle.ema_end['0.9'], step: 1200 }]);
    expect(report.metric).toBe('loss');
    expect(report.engine).toBe('mixture');
  });

  it('reports the time to the best raw loss, and prints it', () => {
    const best = oracle.raw.reduce((a, b) => (b.loss < a.loss ? b : a));
    expect(report.target.source).toBe('best-raw');
    expect(Math.abs(report.target.value - best.loss)).toBeLessThan(1e-5);
    for (const [i, k] of ['5', '10'].entries()) {
      const step = firstAtOrBelow(oracle.lawa_curve[k], best.loss)!;
      const t = report.time_to_target[i];
      expect(t).toMatchObject({
        name: `lawa-${k}`,
        method: 'lawa',
        params: { k: Number(k) },
        step,
        baseline_step: best.step,
        steps_saved: best.step - step,
      });
      expect(t.share_saved).toBeCloseTo((best.step - step) / best.step, 12);
      expect(out.stdout).toContain(
        `lawa-${k} reaches the run's best loss (${best.loss.toFixed(4)}) at step ${step} instead of ${best.step}: ${Math.round((100 * (best.step - step)) / best.step)}% fewer steps`,
      );
    }
  });

  it('writes a well-formed SVG with the four lines and a self-contained HTML page', () => {
    const svg = readFileSync(files.plot, 'utf8');
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg.match(/aria-roledescription="line mark"/g)).toHaveLength(4);
    const html = readFileSync(files.html, 'utf8');
    expect(html).not.toMatch(/<script|src=|href=/i);
    expect(html).toContain('<svg');
    expect(html).toContain(
      `<pre><code>avg-ckpt curve ${FIX}/run --onnx ${FIX}/model.onnx --input input=${FIX}/val_input.npy --labels ${FIX}/val_labels.npy --window 5,10 --ema 0.9 --device cpu</code></pre>`,
    );
  });
});

describe('curve on digits-cnn-fp16 (F16 shards, BatchNorm buffers, I64 counters)', () => {
  it('gives the oracle lawa_curve for k=5, and says that averaging never reaches the best raw loss', async () => {
    const F = 'fixtures/runs/digits-cnn-fp16';
    const r = await run([
      'curve',
      `${F}/run`,
      '--onnx',
      `${F}/model.onnx`,
      '--input',
      `pixels=${F}/val_input.npy`,
      '--labels',
      `${F}/val_labels.npy`,
      '--device',
      'cpu',
      '--window',
      '5',
      '--json',
      '--quiet',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as CurveReport;
    const cnn = cases['digits-cnn-fp16'];
    expectMatches(rep.methods[0].points, cnn.raw);
    expectMatches(rep.methods[1].points, cnn.lawa_curve['5']);
    const best = Math.min(...cnn.raw.map((p) => p.loss));
    expect(firstAtOrBelow(cnn.lawa_curve['5'], best)).toBeNull(); // the oracle's own verdict
    expect(rep.time_to_target[0].step).toBeNull();
  });
});

describe('curve options', () => {
  it('--every N evaluates every N-th checkpoint counted back from the newest; --target sets the target', async () => {
    const r = await run([
      'curve',
      `${FIX}/run`,
      ...DATA,
      '--window',
      '5',
      '--every',
      '7',
      '--from-step',
      '400',
      '--target',
      '0.1',
      '--json',
      '--quiet',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as CurveReport;
    // steps 400..1200 (41 checkpoints); every 7th back from 1200: 1200, 1060, ..., 400
    const steps = Array.from({ length: 41 }, (_, i) => 400 + 20 * i).filter((s) => ((1200 - s) / 20) % 7 === 0);
    expect(rep.steps).toEqual(steps);
    expectMatches(
      rep.methods[0].points,
      oracle.raw.filter((p) => steps.includes(p.step)),
    );
    // a window of 5 needs 5 selected checkpoints: LAWA is defined from step 480, so at the evaluated steps from 500 on
    expect(rep.methods[1].points.map((p) => p.step)).toEqual(steps.filter((s) => s >= 480));
    expect(rep.target).toEqual({ value: 0.1, source: 'given' });
    const rawHit = oracle.raw.find((p) => steps.includes(p.step) && p.loss <= 0.1)?.step ?? null;
    expect(rep.time_to_target[0].baseline_step).toBe(rawHit);
  });

  it('refuses a curve with nothing to compare, and a window longer than the run (exit 2)', async () => {
    const none = await run(['curve', `${FIX}/run`, ...DATA]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--window K and/or --ema G');
    const long = await run(['curve', `${FIX}/run`, ...DATA, '--window', '61']);
    expect(long.code).toBe(2);
    expect(long.stderr).toContain('--window 61 is longer than the 60 selected checkpoints');
  });
});
