/**
 * ISSUE 6 part 5: two merges writing the same output at once end with one complete, valid
 * output (all of one or all of the other, never a mix), and no temporary files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, listAll, runCli } from '../helpers/cli.js';
import { put, stFile, tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir('avg-ckpt-e2e-conc-');
beforeAll(ensureBuilt);
afterAll(tmp.cleanup);

const E = 1 << 18; // 1 MiB of F32 per tensor: the two runs overlap (each takes ~0.5 s, mostly start-up)
const run = join(tmp.dir, 'run');
beforeAll(() => {
  for (const k of [1, 2, 3]) {
    const w = new Float32Array(E);
    for (let j = 0; j < E; j++) w[j] = k + (j % 7);
    const v = new Float32Array(E).fill(10 * k);
    put(
      join(run, `checkpoint-${k}`, 'model.safetensors'),
      stFile([
        { name: 'v', dtype: 'F32', shape: [E], data: new Uint8Array(v.buffer) },
        { name: 'w', dtype: 'F32', shape: [E], data: new Uint8Array(w.buffer) },
      ]),
    );
  }
});

/** Which merge produced the file: 'lawa1' (newest: w = 3 + j%7, v = 30) or 'uniform' (w = 2 + j%7, v = 20). */
function whichOutput(path: string): string {
  const buf = readFileSync(path);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8'));
  expect(buf.length).toBe(8 + len + 8 * E);
  const tensor = (name: string) => {
    const [b, e] = header[name].data_offsets as [number, number];
    return new Float32Array(buf.buffer.slice(buf.byteOffset + 8 + len + b, buf.byteOffset + 8 + len + e));
  };
  const w = tensor('w');
  const v = tensor('v');
  const verdicts = new Set<string>();
  for (let j = 0; j < E; j++) {
    verdicts.add(w[j] === 3 + (j % 7) ? 'lawa1' : w[j] === 2 + (j % 7) ? 'uniform' : 'garbage');
    verdicts.add(v[j] === 30 ? 'lawa1' : v[j] === 20 ? 'uniform' : 'garbage');
  }
  expect([...verdicts]).toHaveLength(1);
  return [...verdicts][0];
}

const A = ['--method', 'lawa', '--k', '1'];
const B = ['--method', 'uniform'];

describe('two merges to the same output at once', () => {
  it.each([1])(
    'file output with --force (round %i): both succeed, the file is all one or all the other',
    async (round) => {
      const out = join(tmp.dir, `force-${round}`);
      const target = join(out, 'avg.safetensors');
      const [ra, rb] = await Promise.all([
        runCli(['merge', run, ...A, '-o', target, '--force', '--quiet']),
        runCli(['merge', run, ...B, '-o', target, '--force', '--quiet']),
      ]);
      expect([ra.code, rb.code], ra.stderr + rb.stderr).toEqual([0, 0]);
      expect(['lawa1', 'uniform']).toContain(whichOutput(target));
      expect(listAll(out)).toEqual(['avg.safetensors']);
    },
  );

  it.each([1, 2])(
    'file output without --force (round %i): exactly one succeeds, the loser says the output exists, one valid file',
    async (round) => {
      const out = join(tmp.dir, `noforce-${round}`);
      const target = join(out, 'avg.safetensors');
      const rs = await Promise.all([
        runCli(['merge', run, ...A, '-o', target, '--quiet']),
        runCli(['merge', run, ...B, '-o', target, '--quiet']),
      ]);
      const codes = rs.map((r) => r.code).sort();
      // the output is moved in with link(), which never replaces: two successes would mean one clobbered the other
      expect(codes).toEqual([0, 1]);
      for (const r of rs.filter((x) => x.code === 1)) {
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/already exists|appeared while avg-ckpt was writing it/);
        expect(r.stderr).toContain(target);
      }
      const winner = whichOutput(target);
      expect(['lawa1', 'uniform']).toContain(winner);
      expect(listAll(out)).toEqual(['avg.safetensors']);
    },
  );

  it.each([1])(
    'folder output with --force over an existing folder (round %i): one complete folder, no leftovers',
    async (round) => {
      const out = join(tmp.dir, `dir-${round}`);
      const target = join(out, 'avg');
      const first = await runCli(['merge', run, ...B, '-o', `${target}/`, '--quiet']);
      expect(first.code, first.stderr).toBe(0);
      const rs = await Promise.all([
        runCli(['merge', run, ...A, '-o', `${target}/`, '--force', '--quiet']),
        runCli(['merge', run, ...B, '-o', `${target}/`, '--force', '--quiet']),
      ]);
      expect(
        rs.some((r) => r.code === 0),
        rs.map((r) => r.stderr).join(''),
      ).toBe(true);
      for (const r of rs.filter((x) => x.code !== 0)) {
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
      }
      expect(existsSync(join(target, 'model.safetensors'))).toBe(true);
      expect(readdirSync(target)).toEqual(['model.safetensors']);
      expect(['lawa1', 'uniform']).toContain(whichOutput(join(target, 'model.safetensors')));
      expect(listAll(out)).toEqual(['avg', 'avg/model.safetensors']);
    },
  );
});
