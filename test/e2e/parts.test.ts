/**
 * Issue 12.3: N processes with different --part indices, then --finalize, give the bytes of one
 * merge; a missing or stale part is named by finalize, which then writes nothing.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePartSpec } from '../../src/engine/parts.js';
import { AvgCkptError } from '../../src/errors.js';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir('avg-ckpt-e2e-parts-');
const run = join(tmp.dir, 'run');
const recipe = [run, '-m', 'lawa', '--last', '5', '-q'];

function hashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    if (statSync(join(dir, f)).isFile())
      out[f] = createHash('sha256')
        .update(readFileSync(join(dir, f)))
        .digest('hex');
  }
  return out;
}

async function parts(out: string, n: number, extra: string[] = []): Promise<void> {
  const rs = await Promise.all(
    Array.from({ length: n }, (_, i) => runCli(['merge', ...recipe, '-o', `${out}/`, '--part', `${i}/${n}`, ...extra])),
  );
  for (const r of rs) expect(r.code, r.stderr).toBe(0);
}

beforeAll(() => {
  ensureBuilt();
  cpSync(join(ROOT, 'fixtures', 'runs', 'digits-mlp', 'run'), run, { recursive: true });
  // a config file in the newest checkpoint: finalize copies it like merge does
  const newest = readdirSync(run)
    .sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]))
    .at(-1)!;
  writeFileSync(join(run, newest, 'config.json'), '{"model_type": "mlp"}\n');
});
afterAll(tmp.cleanup);

describe('--part I/N, then --finalize', () => {
  for (const [n, extra] of [
    [3, []],
    [2, ['--shard-size', '40kB']],
    [5, ['--shard-size', '30kB', '--dtype', 'bf16']],
  ] as const) {
    it(`${n} processes${extra.length > 0 ? ` with ${extra.join(' ')}` : ''} equal one merge byte for byte`, async () => {
      const one = join(tmp.dir, `one-${n}`);
      const split = join(tmp.dir, `split-${n}`);
      const r = await runCli(['merge', ...recipe, '-o', `${one}/`, ...extra]);
      expect(r.code, r.stderr).toBe(0);
      await parts(split, n, [...extra]);
      expect(existsSync(join(split, '_SUCCESS'))).toBe(false);
      const f = await runCli(['merge', ...recipe, '-o', `${split}/`, '--finalize', ...extra]);
      expect(f.code, f.stderr).toBe(0);
      const { _SUCCESS, ...rest } = hashes(split);
      expect(_SUCCESS).toBe(createHash('sha256').update('').digest('hex'));
      expect(rest).toEqual(hashes(one));
      expect(Object.keys(rest)).toContain('config.json');
    });
  }

  it('names a missing part and writes nothing', async () => {
    const out = join(tmp.dir, 'missing');
    await parts(out, 3);
    rmSync(join(out, '.avg-ckpt-parts', 'part-1-of-3.json'));
    const before = hashes(out);
    const f = await runCli(['merge', ...recipe, '-o', `${out}/`, '--finalize']);
    expect(f.code).toBe(1);
    expect(f.stderr.trim()).toBe(
      `avg-ckpt: ${out}/: part 1 of 3 has not finished: run those parts again (--part I/3), then --finalize`,
    );
    expect(hashes(out)).toEqual(before);
  });

  it('names a stale part (another recipe) and writes nothing', async () => {
    const out = join(tmp.dir, 'stale');
    await parts(out, 3);
    const r = await runCli(['merge', run, '-m', 'lawa', '--last', '4', '-q', '-o', `${out}/`, '--part', '2/3']);
    expect(r.code, r.stderr).toBe(0);
    const before = hashes(out);
    const f = await runCli(['merge', ...recipe, '-o', `${out}/`, '--finalize']);
    expect(f.code).toBe(1);
    expect(f.stderr.trim()).toBe(
      `avg-ckpt: ${out}/: stale: part 2 (made for another recipe or output layout): run those parts again (--part I/3), then --finalize`,
    );
    expect(hashes(out)).toEqual(before);
  });

  it('names a part made before a checkpoint was rewritten (same size, other values) and writes nothing', async () => {
    const out = join(tmp.dir, 'rewritten');
    const ckpt = join(tmp.dir, 'run-rewritten');
    cpSync(run, ckpt, { recursive: true });
    const args = [ckpt, '-m', 'lawa', '--last', '5', '-q', '-o', `${out}/`];
    const first = await runCli(['merge', ...args, '--part', '0/2']);
    expect(first.code, first.stderr).toBe(0);
    // the newest checkpoint's weights change in place (a last byte flipped), its layout and size do not
    const newest = readdirSync(ckpt)
      .sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]))
      .at(-1)!;
    const file = join(ckpt, newest, readdirSync(join(ckpt, newest)).find((f) => f.endsWith('.safetensors'))!);
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(file, bytes);
    const second = await runCli(['merge', ...args, '--part', '1/2']);
    expect(second.code, second.stderr).toBe(0);
    const before = hashes(out);
    const f = await runCli(['merge', ...args, '--finalize']);
    expect(f.code).toBe(1);
    expect(f.stderr.trim()).toBe(
      `avg-ckpt: ${out}/: stale: part 0 (made from other inputs): run those parts again (--part I/2), then --finalize`,
    );
    expect(hashes(out)).toEqual(before);
  });

  it('a part whose file was damaged after it finished is stale', async () => {
    const out = join(tmp.dir, 'damaged');
    await parts(out, 2, ['--shard-size', '40kB']);
    const shard = readdirSync(out).find((f) => f.startsWith('model-'))!;
    writeFileSync(join(out, shard), readFileSync(join(out, shard)).subarray(0, 100));
    const f = await runCli(['merge', ...recipe, '-o', `${out}/`, '--finalize', '--shard-size', '40kB']);
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(new RegExp(`stale: part \\d \\(its file ${shard} is 100 bytes, not \\d+\\)`));
    expect(existsSync(join(out, '_SUCCESS'))).toBe(false);
  });
});

describe('parsePartSpec', () => {
  const usage = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(AvgCkptError);
      return (e as AvgCkptError).message;
    }
    throw new Error('no error');
  };
  it('reads I/N, and auto/N from the Kubernetes or Slurm index', () => {
    expect(parsePartSpec('2/8', {})).toEqual({ index: 2, count: 8 });
    expect(parsePartSpec('auto/4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(parsePartSpec('auto/4', { SLURM_ARRAY_TASK_ID: '0' })).toEqual({ index: 0, count: 4 });
  });
  it('refuses an index out of range, a missing index and a malformed spec', () => {
    expect(usage(() => parsePartSpec('4/4', {}))).toBe('--part 4/4: the part index must be 0 to 3');
    expect(usage(() => parsePartSpec('auto/4', { SLURM_ARRAY_TASK_ID: '4' }))).toBe(
      '--part auto/4 (SLURM_ARRAY_TASK_ID=4): the part index must be 0 to 3',
    );
    expect(usage(() => parsePartSpec('auto/2', {}))).toMatch(/neither JOB_COMPLETION_INDEX .* nor SLURM_ARRAY_TASK_ID/);
    expect(usage(() => parsePartSpec('1/0', {}))).toMatch(/expected I\/N/);
  });
});
