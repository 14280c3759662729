/**
 * The WebGPU path end to end: `sweep-window --device webgpu` on the digits-mlp reference run,
 * with both engines, against the same sweep on the CPU. Without a GPU it runs on Mesa 25
 * lavapipe (scripts/setup-lavapipe.sh); where that could not be set up, it skips and says why.
 * Lavapipe compiles shaders slowly, so the grid is a handful of candidates over 8 checkpoints.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { ROOT, runCli } from '../helpers/cli.js';
import { webgpuEnv } from '../helpers/webgpu-env.js';

const RUN = join(ROOT, 'fixtures/runs/digits-mlp');

interface Report {
  device: string;
  engine: string;
  best: string;
  candidates: { name: string; metrics: Record<string, number> }[];
}

const setup = webgpuEnv();
const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-webgpu-'));

async function sweep(device: string, engine: string): Promise<{ report: Report; stderr: string }> {
  const out = join(tmp, `${device}-${engine}.json`);
  const args = [
    'sweep-window',
    join(RUN, 'run'),
    '--onnx',
    join(RUN, 'model.onnx'),
    '--data',
    RUN,
    '--last',
    '8',
    '--windows',
    '2,4,8',
    '--ema',
    '0.5',
    '--device',
    device,
    '--engine',
    engine,
    '--report',
    out,
  ];
  const env = 'env' in setup ? setup.env : process.env;
  const r = await runCli(args, { env: env as Record<string, string>, timeoutMs: 240_000 });
  if (r.code !== 0)
    throw new Error(`sweep-window --device ${device} --engine ${engine} exited ${r.code ?? r.signal}: ${r.stderr}`);
  return { report: JSON.parse(readFileSync(out, 'utf8')) as Report, stderr: r.stderr };
}

function expectSameMetrics(got: Report, want: Report): void {
  expect(got.candidates.map((c) => c.name)).toEqual(want.candidates.map((c) => c.name));
  got.candidates.forEach((c, i) => {
    for (const [m, v] of Object.entries(want.candidates[i].metrics))
      expect(Math.abs(c.metrics[m] - v), `${c.name} ${m}`).toBeLessThanOrEqual(1e-4);
  });
  expect(got.best).toBe(want.best);
}

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf('skip' in setup)('sweep-window on WebGPU', () => {
  let cpu: Report;
  beforeAll(async () => {
    cpu = (await sweep('cpu', 'mixture')).report;
  }, 240_000);

  it('mixture: the weighted sums run on WebGPU and every metric matches the CPU to 1e-4', async () => {
    const { report, stderr } = await sweep('webgpu', 'mixture');
    expect(report).toMatchObject({ device: 'webgpu', engine: 'mixture' });
    expect(stderr).toMatch(/device webgpu; engine mixture/);
    expectSameMetrics(report, cpu);
    // an anchor no code here produced: PyTorch's float64 LAWA-8 loss
    const want = (oracle as unknown as { cases: Record<string, { lawa_end: Record<string, { loss: number }> }> }).cases[
      'digits-mlp'
    ].lawa_end['8'].loss;
    expect(Math.abs(report.candidates.find((c) => c.name === 'lawa-8')!.metrics.loss - want)).toBeLessThanOrEqual(1e-4);
  }, 240_000);

  it('materialize: a baked session per candidate on WebGPU matches the CPU to 1e-4', async () => {
    const { report } = await sweep('webgpu', 'materialize');
    expect(report).toMatchObject({ device: 'webgpu', engine: 'materialize' });
    expectSameMetrics(report, cpu);
  }, 240_000);
});

if ('skip' in setup) {
  describe('sweep-window on WebGPU', () => {
    it.skip(setup.skip, () => undefined);
  });
  process.stderr.write(`${setup.skip}\n`);
}
