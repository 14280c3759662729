/**
 * The arithmetic on several threads (src/engine/compute.ts). Workers only run from the build
 * (dist/ holds the worker script; vitest runs the sources, which compute on one thread), so the
 * merge tests run the built CLI with `--threads N`, starting workers on small inputs with
 * AVG_CKPT_THREAD_MIN_WORK=0, and compare against float64 references computed here and
 * against each other byte for byte.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK, computeBlocks, type ChunkJob } from '../../src/engine/compute.js';
import { Arena } from '../../src/engine/kernels.js';
import { ensureBuilt, listAll, runCli } from '../helpers/cli.js';
import { f32, i64, put, putSparse, stFile, tempDir } from '../helpers/st-bytes.js';
import { bf16ToNumber, bits16, isNearestEven16, readRef, values as valuesOf } from '../helpers/st-reference.js';

const tmp = tempDir('avg-ckpt-threads-');
beforeAll(ensureBuilt);
afterAll(tmp.cleanup);

const THREADED = { AVG_CKPT_THREAD_MIN_WORK: '0' };

/** xorshift values spanning many binades, some exact halfway cases for bf16/f16 rounding. */
function values(n: number, seed: number, scale: number): number[] {
  let x = seed | 1;
  return Array.from({ length: n }, (_, i) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return i % 97 === 0 ? 1 + 2 ** -8 : ((x >>> 0) / 2 ** 32 - 0.5) * scale * 2 ** ((x >>> 27) - 16);
  });
}

const f32s = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);

/** sum_k w_k * x_k in float64, oldest first (the engine's order). */
function reference(xs: number[][], w: number[]): number[] {
  return xs[0].map((_, j) => xs.reduce((acc, x, k) => acc + w[k] * x[j], 0));
}

describe('computeBlocks', () => {
  it('sums and encodes every block once, whichever thread asks, per output, and flags non-finite outputs', () => {
    const n = BLOCK * 3 + 5;
    const xs = [values(n, 1, 1), values(n, 2, 1e3), values(n, 3, 1)].map((v) => Array.from(Float32Array.from(v)));
    xs[2][BLOCK + 9] = Math.fround(2e38); // x 3 overflows float32 in output 1 only
    const arena = new Arena(8 + 3 * n * 4 + 2 * n * 12 + 64);
    const counter = arena.bytes(8).byteOffset;
    const inputs = xs.map((x) => {
      const b = arena.bytes(n * 4);
      b.set(f32s(x));
      return { offset: b.byteOffset, dtype: 'F32' as const };
    });
    const outs = [0, 1].map(() => ({ acc: arena.f64(n), out: arena.bytes(n * 4) }));
    const weights = [
      [0.125, 0.25, 0.625],
      [0, 0, 3],
    ];
    const job: ChunkJob = {
      n,
      counter,
      inputs,
      outputs: outs.map((o, m) => ({
        acc: o.acc.byteOffset,
        out: o.out.byteOffset,
        dt: 'F32',
        terms:
          m === 0
            ? [
                [0, 0.125],
                [1, 0.25],
                [2, 0.625],
              ]
            : [[2, 3]],
      })),
      check: true,
    };
    expect(computeBlocks(job, arena.memory)).toEqual([false, true]);
    outs.forEach((o, m) => {
      const want = reference(xs, weights[m]).map(Math.fround);
      expect(Array.from(new Float32Array(o.out.buffer, o.out.byteOffset, n))).toEqual(want);
    });
    outs[0].out.fill(0);
    expect(computeBlocks(job, arena.memory)).toEqual([false, false]); // the counter is spent: nothing left to take
    expect(outs[0].out.every((b) => b === 0)).toBe(true);
  });
});

/** Three checkpoints: a multi-chunk tensor (2 chunks + an odd tail), an odd-sized one, a scalar, an I64. */
function putRun(
  name: string,
  patch?: (k: number, big: number[]) => void,
): { run: string; xs: Record<string, number[][]> } {
  const run = join(tmp.dir, name);
  const xs: Record<string, number[][]> = { big: [], odd: [], scalar: [] };
  for (const k of [1, 2, 3]) {
    const big = values((2 << 20) + 12_345, k, 1);
    patch?.(k, big);
    const odd = values(111, 10 + k, 1e3);
    put(
      join(run, `checkpoint-${k}`, 'model.safetensors'),
      stFile([
        { name: 'big', dtype: 'F32', shape: [big.length], data: f32s(big) },
        { name: 'odd', dtype: 'F32', shape: [3, 37], data: f32s(odd) },
        { name: 'scalar', dtype: 'F32', shape: [], data: f32(k / 3) },
        { name: 'ids', dtype: 'I64', shape: [3], data: i64(k, 2 * k, 3 * k) },
      ]),
    );
    for (const [t, v] of [
      ['big', big],
      ['odd', odd],
      ['scalar', [k / 3]],
    ] as const)
      xs[t].push(Array.from(Float32Array.from(v)));
  }
  return { run, xs };
}

describe('merge on 1-4 threads (built CLI)', () => {
  const { run, xs } = putRun('run');
  const W = [0.125, 0.25, 0.625]; // --weights 1,2,5
  const merged = (dtype: string, threads: number) => join(tmp.dir, `${dtype}-${threads}.safetensors`);
  const args = (dtype: string, threads: number) => [
    'merge',
    run,
    '--method',
    'weights',
    '--weights',
    '1,2,5',
    '--dtype',
    dtype,
    '--threads',
    String(threads),
    '-o',
    merged(dtype, threads),
    '--json',
  ];

  it('f32: every thread count gives the float64 reference rounded to F32, on as many threads as asked', async () => {
    for (const threads of [1, 2, 3, 4]) {
      const r = await runCli(args('f32', threads), { env: THREADED });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).threads).toBe(threads);
      const got = readRef(merged('f32', threads)).tensors;
      for (const name of ['big', 'odd', 'scalar'])
        expect(valuesOf(got[name]), `${name}, ${threads} threads`).toEqual(reference(xs[name], W).map(Math.fround));
      expect(valuesOf(got.ids)).toEqual([3, 6, 9]); // copied from the newest
    }
  }, 300_000);

  it('bf16: the same bytes for 1, 2, 3 and 4 threads, each the nearest bf16 to the float64 reference', async () => {
    const rs = await Promise.all([1, 2, 3, 4].map((t) => runCli(args('bf16', t), { env: THREADED })));
    for (const r of rs) expect(r.code, r.stderr).toBe(0);
    const one = readFileSync(merged('bf16', 1));
    for (const t of [2, 3, 4]) expect(Buffer.compare(readFileSync(merged('bf16', t)), one), `${t} threads`).toBe(0);
    const big = bits16(readRef(merged('bf16', 1)).tensors.big);
    const ref = reference(xs.big, W);
    const wrong = big.map((h, j) => (isNearestEven16(h, ref[j], bf16ToNumber) ? -1 : j)).filter((j) => j >= 0);
    expect(wrong.slice(0, 5)).toEqual([]);
  }, 300_000);

  it('an average that overflows f16 fails with the same one-line error on 1 and 2 threads, no temporary file', async () => {
    // two folders: an abandoned output removes the folder created for it, under the other's feet
    const out = (o: string) => join(tmp.dir, `overflow-${o}`);
    const cmd = (o: string, t: number) => [
      'merge',
      run,
      '--method',
      'uniform',
      '--dtype',
      'f16',
      '--threads',
      String(t),
      '-o',
      join(out(o), 'avg.safetensors'),
    ];
    const [w, t] = await Promise.all([runCli(cmd('w', 2), { env: THREADED }), runCli(cmd('t', 1), { env: THREADED })]);
    expect(w.code).toBe(t.code);
    expect(w.code).not.toBe(0);
    expect(w.stderr.replace('overflow-w', 'overflow-t')).toBe(t.stderr);
    expect(w.stderr).toMatch(/^avg-ckpt: .*beyond the range of the output dtype F16.*\n$/);
    expect([...listAll(out('w')), ...listAll(out('t'))]).toEqual([]);
  });

  it('a NaN input in the second chunk is named, as on one thread', async () => {
    const bad = putRun('nan', (k, big) => {
      if (k === 2) big[(2 << 20) + 7] = NaN;
    }).run;
    const out = (o: string) => join(tmp.dir, `nan-out-${o}`);
    const cmd = (o: string, t: number) => [
      'merge',
      bad,
      '--dtype',
      'bf16',
      '--threads',
      String(t),
      '-o',
      join(out(o), 'avg.safetensors'),
    ];
    const [w, t] = await Promise.all([runCli(cmd('w', 3), { env: THREADED }), runCli(cmd('t', 1), { env: THREADED })]);
    expect(w.code).not.toBe(0);
    expect(w.code).toBe(t.code);
    expect(w.stderr).toBe(t.stderr);
    expect(w.stderr).toContain('checkpoint-2');
    expect(w.stderr).toContain(`element ${(2 << 20) + 7}`);
    expect([...listAll(out('w')), ...listAll(out('t'))]).toEqual([]);
  });

  it('--threads 0 (merge) and 1.5 (sweep-window) are usage errors', async () => {
    const r = await runCli(['merge', run, '--threads', '0', '-o', join(tmp.dir, 'zero.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--threads takes a whole number >= 1, got 0');
    const m = 'fixtures/runs/digits-mlp';
    const s = await runCli(['sweep-window', `${m}/run`, '--onnx', `${m}/model.onnx`, '--data', m, '--threads', '1.5']);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain('--threads takes a whole number >= 1, got 1.5');
  });

  it('SIGINT while the workers run: exit 130, nothing left behind, no hang', async () => {
    const big = join(tmp.dir, 'big');
    const n = 24 << 20;
    for (const k of [1, 2])
      putSparse(join(big, `checkpoint-${k}`, 'model.safetensors'), [
        { name: 'big', dtype: 'F32', shape: [n], bytes: 4 * n },
      ]);
    const out = join(tmp.dir, 'sigint');
    const r = await runCli(['merge', big, '--dtype', 'bf16', '--threads', '2', '-o', join(out, 'avg.safetensors')], {
      env: THREADED,
      timeoutMs: 30_000,
      during: async (child) => {
        const started = Date.now();
        while (!listAll(out).some((e) => e.includes('.tmp-')) && Date.now() - started < 20_000)
          await new Promise((r) => setTimeout(r, 10));
        child.kill('SIGINT');
      },
    });
    expect(r.signal).toBeNull();
    expect(r.code, r.stderr).toBe(130);
    expect(listAll(out)).toEqual([]);
  });
});
