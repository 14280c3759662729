/**
 * `merge` with several recipes (--last 2,4, --ema, --recipes FILE): one output per recipe, named
 * by `{name}` in -o, each byte for byte the output of `merge` run for that recipe alone.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recipesFromFile } from '../../src/commands/merge-many.js';
import { AvgCkptError } from '../../src/errors.js';
import { ensureBuilt, listAll, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/st-bytes.js';

const MLP = 'fixtures/runs/digits-mlp/run';
const tmp = tempDir('avg-ckpt-recipes-');
beforeAll(ensureBuilt);
afterAll(tmp.cleanup);

async function alone(args: string[], out: string): Promise<Buffer> {
  const r = await runCli(['merge', MLP, ...args, '-o', out, '-q']);
  expect(r.code, r.stderr).toBe(0);
  return readFileSync(out);
}

describe('merge with several recipes (built CLI)', () => {
  it('--method lawa --last 2,4 --ema 0.5: three outputs in one pass, each equal to its merge alone', async () => {
    const dir = join(tmp.dir, 'flags');
    const r = await runCli([
      'merge',
      MLP,
      '--method',
      'lawa',
      '--last',
      '2,4',
      '--ema',
      '0.5',
      '--dtype',
      'bf16',
      '-o',
      `${dir}/{name}.safetensors`,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { name: string; output: string }[];
    expect(json.map((j) => j.name)).toEqual(['lawa-2', 'lawa-4', 'ema-0.5']);
    expect(listAll(dir).sort()).toEqual(['ema-0.5.safetensors', 'lawa-2.safetensors', 'lawa-4.safetensors']);
    const want = {
      'lawa-2': await alone(
        ['--method', 'lawa', '--last', '2', '--dtype', 'bf16'],
        join(tmp.dir, 'a-lawa2.safetensors'),
      ),
      'lawa-4': await alone(
        ['--method', 'lawa', '--last', '4', '--dtype', 'bf16'],
        join(tmp.dir, 'a-lawa4.safetensors'),
      ),
      // the EMA averages the widest --last window
      'ema-0.5': await alone(
        ['--method', 'ema', '--decay', '0.5', '--last', '4', '--dtype', 'bf16'],
        join(tmp.dir, 'a-ema.safetensors'),
      ),
    };
    for (const [name, bytes] of Object.entries(want)) {
      expect(Buffer.compare(readFileSync(join(dir, `${name}.safetensors`)), bytes), name).toBe(0);
    }
  });

  it('--recipes FILE: each recipe with its own selection, equal to its merge alone', async () => {
    const file = join(tmp.dir, 'recipes.json');
    writeFileSync(
      file,
      JSON.stringify([
        { method: 'lawa', k: 3 },
        { method: 'ema', decay: 0.9, last: 5 },
      ]),
    );
    const dir = join(tmp.dir, 'file');
    const r = await runCli(['merge', MLP, '--recipes', file, '--from-step', '1000', '-o', `${dir}/{name}/`, '-q']);
    expect(r.code, r.stderr).toBe(0);
    const lawa = await alone(
      ['--method', 'lawa', '--k', '3', '--from-step', '1000'],
      join(tmp.dir, 'b-lawa.safetensors'),
    );
    const ema = await alone(
      ['--method', 'ema', '--decay', '0.9', '--last', '5', '--from-step', '1000'],
      join(tmp.dir, 'b-ema.safetensors'),
    );
    expect(Buffer.compare(readFileSync(join(dir, 'lawa-3', 'model.safetensors')), lawa)).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'ema-0.9', 'model.safetensors')), ema)).toBe(0);
  });

  it('several recipes and an -o without {name}: a usage error, nothing written', async () => {
    const out = join(tmp.dir, 'noname', 'x.safetensors');
    const r = await runCli(['merge', MLP, '--method', 'lawa', '--last', '2,4', '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('2 recipes need {name} in -o');
    expect(listAll(join(tmp.dir, 'noname'))).toEqual([]);
  });

  it('--dry-run lists each recipe', async () => {
    const r = await runCli(['merge', MLP, '--method', 'lawa', '--last', '2,3', '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { name: string; checkpoints: unknown[] }[];
    expect(json.map((j) => [j.name, j.checkpoints.length])).toEqual([
      ['lawa-2', 2],
      ['lawa-3', 3],
    ]);
  });
});

describe('recipesFromFile', () => {
  const bad = async (content: string): Promise<string> => {
    const file = join(tmp.dir, `bad-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, content);
    const e = await recipesFromFile(file).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AvgCkptError);
    return (e as AvgCkptError).oneLine();
  };

  it('reads methods, their options and selections, the command line selection as default', async () => {
    const file = join(tmp.dir, 'ok.json');
    writeFileSync(
      file,
      JSON.stringify([
        { method: 'LAWA', k: 8 },
        { method: 'ema', decay: 0.9, every: 2 },
      ]),
    );
    expect(await recipesFromFile(file, { fromStep: 100 })).toEqual([
      { method: { method: 'lawa', k: 8 }, select: { fromStep: 100 } },
      { method: { method: 'ema', decay: 0.9 }, select: { fromStep: 100, every: 2 } },
    ]);
  });

  it('names the file and the recipe for each kind of mistake', async () => {
    expect(await bad('{')).toMatch(/bad-.*\.json: is not JSON/);
    expect(await bad('[]')).toContain('non-empty JSON list');
    expect(await bad('[{"k": 8}]')).toContain('recipe 1: an object with a "method"');
    expect(await bad('[{"method": "lawa", "window": 8}]')).toContain('recipe 1: unknown key "window"');
    expect(await bad('[{"method": "lawa", "k": [8]}]')).toContain('"k" must be a number or a string');
    expect(await bad('[{"method": "lawo"}]')).toContain('did you mean lawa');
  });
});
