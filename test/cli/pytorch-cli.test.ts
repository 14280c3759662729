/**
 * PyTorch runs through the CLI: discovery of the layouts training code writes (steps from names
 * or from the file's `step` entry, Trainer folders whose other pickles are never opened, sharded
 * `.bin` with its index, extensionless files, a series mixing formats), `--key`, `inspect`, and
 * the malicious files refused with nothing executed and nothing written.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { PT } from '../helpers/pt-reference.js';
import { tempDir } from '../helpers/st-bytes.js';
import { readRef } from '../helpers/st-reference.js';

const tmp = tempDir();
afterAll(tmp.cleanup);
beforeAll(ensureBuilt);

async function inspectJson(...args: string[]) {
  const r = await runCli(['inspect', ...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as {
    checkpoints: { step: number; stepSource: string; format: string; entry?: string; tensors: number; path: string }[];
  };
}

describe('PyTorch runs (CLI)', () => {
  it('inspect shows the format, the state dict used and the steps from the names', async () => {
    const s = await inspectJson(`${PT}/plainlm/run`);
    expect(s.checkpoints.map((c) => c.step)).toEqual([25, 50, 75, 100, 125, 150, 175, 200]);
    expect(s.checkpoints[0]).toMatchObject({ format: 'pytorch', entry: 'state_dict', tensors: 29, stepSource: 'name' });
    expect(
      (await inspectJson(`${PT}/timm/run`, '--key', 'state_dict_ema', '--last', '1')).checkpoints[0],
    ).toMatchObject({ entry: 'state_dict_ema', step: 10 });
    expect((await inspectJson(`${PT}/legacy/run`)).checkpoints.map((c) => c.step)).toEqual([20, 40, 60, 80, 100, 120]);
    const table = await runCli(['inspect', `${PT}/lightning/run`, '--last', '1']);
    expect(table.stdout).toMatch(/200\s+1\s+.*\s+16\s+pytorch\[state_dict\]\s+F32x14,I64x2/);
  });

  it("steps from the file's step entry when the names have none; extensionless checkpoint_<step> files", async () => {
    const run = join(tmp.dir, 'unnamed');
    mkdirSync(run);
    copyFileSync(`${PT}/plainlm/run/ckpt_step_75.pth`, join(run, 'latest.pth'));
    copyFileSync(`${PT}/plainlm/run/ckpt_step_50.pth`, join(run, 'previous.pth'));
    const s = await inspectJson(run);
    expect(s.checkpoints.map((c) => [c.step, c.stepSource])).toEqual([
      [50, 'metadata'],
      [75, 'metadata'],
    ]);
    const algoperf = join(tmp.dir, 'algoperf');
    mkdirSync(algoperf);
    for (const step of [100, 200])
      copyFileSync(`${PT}/views/run/step_000${step}.pt`, join(algoperf, `checkpoint_${step}`));
    expect((await inspectJson(algoperf)).checkpoints.map((c) => c.step)).toEqual([100, 200]);
  });

  it('a Trainer folder: optimizer, scheduler, RNG, scaler and training_args pickles are never opened', async () => {
    const run = join(tmp.dir, 'trainer');
    cpSync(`${PT}/hfbin/run`, run, { recursive: true });
    for (const ck of readdirSync(run)) {
      // each a pickle that would be refused if it were ever read
      for (const f of ['optimizer.pt', 'scheduler.pt', 'rng_state_0.pth', 'scaler.pt', 'training_args.bin'])
        copyFileSync(`${PT}/evil/system/ckpt_step_200.pth`, join(run, ck, f));
    }
    const s = await inspectJson(run);
    expect(s.checkpoints.map((c) => c.step)).toEqual([20, 40, 60, 80, 100, 120]);
    expect(s.checkpoints[0]).toMatchObject({ format: 'pytorch', entry: '', tensors: 28 });
  });

  it('a sharded pytorch_model.bin with its index merges like the single file', async () => {
    const out = (name: string) => join(tmp.dir, name);
    const sharded = await runCli(['merge', `${PT}/extra/sharded`, '-m', 'uniform', '-o', out('sharded.safetensors')]);
    expect(sharded.code, sharded.stderr).toBe(0);
    const single = await runCli([
      'merge',
      `${PT}/hfbin/run`,
      '--from-step',
      '100',
      '-m',
      'uniform',
      '-o',
      out('single.safetensors'),
    ]);
    expect(single.code, single.stderr).toBe(0);
    const [a, b] = [readRef(out('sharded.safetensors')).tensors, readRef(out('single.safetensors')).tensors];
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(a)) expect(Buffer.compare(a[k].bytes, b[k].bytes), k).toBe(0);
  });

  it('a series mixing formats (safetensors and .pt) merges like the all-.pt one', async () => {
    const mixed = join(tmp.dir, 'mixed');
    mkdirSync(mixed);
    for (const step of [100, 200, 300])
      copyFileSync(`${PT}/views/run/step_000${step}.pt`, join(mixed, `step_000${step}.pt`));
    for (const step of [400, 500]) {
      // the same checkpoint as safetensors: a one-checkpoint "average" copies it exactly (named
      // explicitly below: discovery leaves avg-ckpt's own outputs out of a run folder)
      const r = await runCli([
        'merge',
        `${PT}/views/run/step_000${step}.pt`,
        '-o',
        join(mixed, `step_000${step}.safetensors`),
      ]);
      expect(r.code, r.stderr).toBe(0);
    }
    const files = readdirSync(mixed)
      .sort()
      .map((f) => join(mixed, f));
    expect((await inspectJson(...files)).checkpoints.map((c) => c.format)).toEqual([
      'pytorch',
      'pytorch',
      'pytorch',
      'safetensors',
      'safetensors',
    ]);
    const a = await runCli(['merge', ...files, '-m', 'lawa', '--last', '5', '-o', join(tmp.dir, 'mixed.safetensors')]);
    const b = await runCli([
      'merge',
      `${PT}/views/run`,
      '-m',
      'lawa',
      '--last',
      '5',
      '-o',
      join(tmp.dir, 'pt.safetensors'),
    ]);
    expect([a.code, b.code], a.stderr + b.stderr).toEqual([0, 0]);
    const [x, y] = [
      readRef(join(tmp.dir, 'mixed.safetensors')).tensors,
      readRef(join(tmp.dir, 'pt.safetensors')).tensors,
    ];
    for (const k of Object.keys(y)) expect(Buffer.compare(x[k].bytes, y[k].bytes), k).toBe(0);
  });

  it('--key names another state dict; a missing one lists the keys with tensor counts', async () => {
    const r = await runCli(['merge', `${PT}/extra/nested.pt`, '--key', 'ema.module', '-o', join(tmp.dir, 'nested.pt')]);
    expect(r.code, r.stderr).toBe(0);
    const bad = await runCli([
      'merge',
      `${PT}/timm/run`,
      '--key',
      'state_dict_emma',
      '-o',
      join(tmp.dir, 'x.safetensors'),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain(
      'has no entry "state_dict_emma" (--key); top-level keys: epoch (0 tensors), arch (0 tensors), state_dict (16 tensors)',
    );
    expect(existsSync(join(tmp.dir, 'x.safetensors'))).toBe(false);
  });

  for (const [kind, global] of [
    ['system', 'posix.system'],
    ['eval', '__builtin__.eval'],
  ]) {
    it(`the ${kind} pickle is refused in one line naming the file and the global; nothing runs, nothing is written`, async () => {
      const cwd = join(tmp.dir, `evil-${kind}`);
      mkdirSync(cwd);
      for (const cmd of [
        ['merge', join(process.cwd(), PT, 'evil', kind), '-o', 'avg.pt'],
        ['inspect', join(process.cwd(), PT, 'evil', kind)],
      ]) {
        const r = await runCli(cmd, { cwd });
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toContain(`ckpt_step_200.pth: refused: the pickle names the global ${global}`);
      }
      expect(readdirSync(cwd)).toEqual([]); // no PWNED, no output, no temporary files
    });
  }
});
