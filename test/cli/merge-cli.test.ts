/** The merge and inspect commands end to end, through bin/avg-ckpt.js. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRef, values } from '../helpers/st-reference.js';
import { runCli } from '../helpers/cli.js';

const MLP = 'fixtures/runs/digits-mlp/run';
const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('avg-ckpt merge (CLI)', () => {
  it('--dry-run --json prints the weight vector without writing anything', async () => {
    const r = await runCli(['merge', MLP, '--method', 'ema', '--decay', '0.5', '--last', '3', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.name).toBe('ema-0.5');
    expect(out.checkpoints.map((c: { step: number }) => c.step)).toEqual([1160, 1180, 1200]);
    // ema_1 = theta_1; ema_2 = .5 ema_1 + .5 theta_2; ema_3 = .5 ema_2 + .5 theta_3
    expect(out.checkpoints.map((c: { weight: number }) => c.weight)).toEqual([0.25, 0.25, 0.5]);
  });

  it('writes the output and reports it in JSON', async () => {
    const o = join(tmp, 'lawa2.safetensors');
    const r = await runCli(['merge', MLP, '--method', 'lawa', '--last', '2', '-o', o, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ output: o, name: 'lawa-2', files: [o] });
    const a = readRef(`${MLP}/checkpoint-1180/model.safetensors`).tensors['4.bias'];
    const b = readRef(`${MLP}/checkpoint-1200/model.safetensors`).tensors['4.bias'];
    const got = values(readRef(o).tensors['4.bias']);
    expect(got).toEqual(values(a).map((x, i) => Math.fround(0.5 * x + 0.5 * values(b)[i])));
  });

  it('usage errors exit 2 with one line and a hint', async () => {
    const r = await runCli(['merge', MLP, '--method', 'ema']);
    expect(r.code).toBe(2);
    const r2 = await runCli(['merge', MLP, '--method', 'ema', '--dry-run']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('--method ema needs --decay or --decay-per-step');
  });

  it('bad input exits 1 with one line naming the file, and writes nothing', async () => {
    const o = join(tmp, 'never.safetensors');
    const r = await runCli(['merge', 'fixtures/runs/digits-mlp/model.onnx', '-o', o]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^avg-ckpt: fixtures\/runs\/digits-mlp\/model\.onnx: /);
    expect(existsSync(o)).toBe(false);
  });

  it('an empty selection is a clear error', async () => {
    const r = await runCli(['merge', MLP, '--from-step', '5000', '-o', join(tmp, 'x.safetensors')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no checkpoint of the run is selected');
  });
});

describe('avg-ckpt inspect (CLI)', () => {
  it('lists the series in numeric step order with its sources', async () => {
    const r = await runCli(['inspect', MLP, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.compatible).toBe(true);
    expect(s.checkpoints).toHaveLength(60);
    expect(s.checkpoints.map((c: { step: number }) => c.step)).toEqual(
      Array.from({ length: 60 }, (_, i) => 20 * (i + 1)),
    );
    expect(s.checkpoints[0]).toMatchObject({ shards: 1, tensors: 6, dtypes: { F32: 6 }, stepSource: 'name' });
  });

  it('shows shards and integer dtypes of a sharded run', async () => {
    const r = await runCli(['inspect', 'fixtures/runs/digits-cnn-fp16/run', '--last', '1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/600\s+2\s+.*I64x2,F16x14/);
  });

  it('--onnx shows which checkpoint tensor feeds each initializer', async () => {
    const r = await runCli(['inspect', MLP, '--last', '1', '--onnx', 'fixtures/runs/digits-mlp/model.onnx', '--json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout).binding as Array<{
      initializer: string;
      status: string;
      source: string;
      shape: string;
    }>;
    // the export kept the checkpoint names (fixtures/runs/oracle.json onnx_initializers)
    expect(rows.map((x) => x.initializer).sort()).toEqual([
      '0.bias',
      '0.weight',
      '2.bias',
      '2.weight',
      '4.bias',
      '4.weight',
    ]);
    for (const row of rows) expect(row).toMatchObject({ status: 'weight', source: row.initializer });
    expect(rows.find((x) => x.initializer === '0.weight')?.shape).toBe('[128, 64]');
  });
});
