/**
 * sweep-window's extra candidates on digits-mlp: a greedy soup over the 20 newest checkpoints
 * (checked against the oracle's raw losses, which decide where the soup starts) and power EMAs
 * (checked against the recipe's quadrature weights).
 */
import { describe, expect, it } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { sweepWindow } from '../../src/commands/sweep.js';
import { gammaOf } from '../../src/recipes/phema.js';

const raw = (oracle as unknown as { cases: Record<string, { raw: { step: number; loss: number }[] }> }).cases[
  'digits-mlp'
].raw;
const dir = 'fixtures/runs/digits-mlp';

describe('sweep-window --greedy and --phema', () => {
  it('builds the soup from the best raw checkpoint, only ever improving on it', async () => {
    const report = await sweepWindow({
      inputs: [`${dir}/run`],
      onnx: `${dir}/model.onnx`,
      data: { dataDir: dir },
      device: 'cpu',
      grid: { windows: [8], phema: [0.1] },
      greedy: 20,
    });
    const soup = report.candidates.find((c) => c.method === 'greedy-soup')!;
    expect(soup.name).toBe('greedy-soup-20');
    const newest20 = raw.slice(-20);
    const bestRaw = newest20.reduce((a, b) => (b.loss < a.loss ? b : a));
    // every member is among the 20 newest, the best raw one is a member, weights are uniform
    expect(soup.steps.every((s) => newest20.some((r) => r.step === s))).toBe(true);
    expect(soup.steps).toContain(bestRaw.step);
    for (const w of soup.weights) expect(w).toBeCloseTo(1 / soup.steps.length, 15);
    // a member joins only on strict improvement, so the soup beats its first member
    expect(soup.metrics.loss).toBeLessThan(bestRaw.loss);
    expect(report.best).toBe(report.candidates.reduce((a, b) => (b.metrics.loss < a.metrics.loss ? b : a)).name);

    const ph = report.candidates.find((c) => c.name === 'phema-0.1')!;
    // w_i proportional to b_hi^(g+1) - b_lo^(g+1) over midpoints between steps 20, 40, ..., 1200
    const g = gammaOf(0.1);
    const steps = raw.map((r) => r.step);
    const bounds = [10, ...steps.slice(0, -1).map((s, i) => (s + steps[i + 1]) / 2), 1210];
    const mass = steps.map((_, i) => (bounds[i + 1] / 1210) ** (g + 1) - (bounds[i] / 1210) ** (g + 1));
    const total = mass.reduce((a, b) => a + b, 0);
    const expected = mass.map((m) => m / total).filter((w) => w > 0);
    expect(ph.weights).toHaveLength(expected.length);
    ph.weights.forEach((w, i) => expect(w).toBeCloseTo(expected[i], 12));
  });
});
