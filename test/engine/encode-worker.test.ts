/**
 * The encode worker (src/engine/encoder.ts). It only runs from the build (dist/ holds the
 * worker script; vitest runs the sources, which encode in-thread), so these tests run the built
 * CLI, forcing the worker on small inputs with AVG_CKPT_WORKER_MIN_ELEMENTS=0 and comparing
 * against the in-thread path (AVG_CKPT_WORKER_MIN_ELEMENTS=Infinity) byte for byte.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBlocks } from '../../src/engine/encoder.js';
import { encode, firstNonFinite } from '../../src/io/float-codec.js';
import { ensureBuilt, listAll, runCli } from '../helpers/cli.js';
import { f32, put, putSparse, stFile, tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir('avg-ckpt-encode-worker-');
beforeAll(ensureBuilt);
afterAll(tmp.cleanup);

const WORKER = { AVG_CKPT_WORKER_MIN_ELEMENTS: '0' };
const IN_THREAD = { AVG_CKPT_WORKER_MIN_ELEMENTS: 'Infinity' };

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

/** Three checkpoints: a multi-chunk tensor (2 chunks + an odd tail), an odd-sized one, a scalar. */
function putRun(name: string, patch?: (k: number, big: number[]) => void): string {
  const run = join(tmp.dir, name);
  for (const k of [1, 2, 3]) {
    const big = values((2 << 20) + 12_345, k, 1);
    patch?.(k, big);
    put(join(run, `checkpoint-${k}`, 'model.safetensors'), stFile([
      { name: 'big', dtype: 'F32', shape: [big.length], data: f32s(big) },
      { name: 'odd', dtype: 'F32', shape: [3, 37], data: f32s(values(111, 10 + k, 1e3)) },
      { name: 'scalar', dtype: 'F32', shape: [], data: f32(k / 3) },
    ]));
  }
  return run;
}

describe('encodeBlocks', () => {
  it('claims every block once, whichever thread asks, and flags non-finite blocks', () => {
    const n = (1 << 16) * 3 + 5;
    const buf = new ArrayBuffer(8 + n * 8 + n * 2);
    const acc = new Float64Array(buf, 8, n);
    acc.set(values(n, 7, 1e4));
    const job = { dt: 'F16' as const, buffer: buf, acc: 8, out: 8 + n * 8, counter: 0, n, check: true };
    const want = new Uint8Array(n * 2);
    encode('F16', acc, want);
    expect(encodeBlocks(job)).toBe(firstNonFinite('F16', want) >= 0);
    expect(new Uint8Array(buf, job.out, n * 2)).toEqual(want);
    expect(encodeBlocks(job)).toBe(false); // the counter is spent: nothing left to take
  });
});

describe('merge with the encode worker (built CLI)', () => {
  const run = putRun('run');

  for (const dtype of ['bf16', 'f16']) {
    it(`--dtype ${dtype}: byte-identical to the in-thread encode`, async () => {
      const outs = { worker: join(tmp.dir, `w-${dtype}.safetensors`), thread: join(tmp.dir, `t-${dtype}.safetensors`) };
      const args = (o: string) => ['merge', run, '--method', 'ema', '--decay', '0.7', '--dtype', dtype, '--allow-nonfinite', '-o', o, '-q'];
      const [w, t] = await Promise.all([runCli(args(outs.worker), { env: WORKER }), runCli(args(outs.thread), { env: IN_THREAD })]);
      expect(w.code, w.stderr).toBe(0);
      expect(t.code, t.stderr).toBe(0);
      expect(Buffer.compare(readFileSync(outs.worker), readFileSync(outs.thread))).toBe(0);
    });
  }

  it('an average that overflows f16 fails with the same one-line error, and no temporary file', async () => {
    const out = join(tmp.dir, 'overflow');
    const args = (o: string) => ['merge', run, '--method', 'uniform', '--dtype', 'f16', '-o', join(out, o)];
    const [w, t] = await Promise.all([runCli(args('w.safetensors'), { env: WORKER }), runCli(args('t.safetensors'), { env: IN_THREAD })]);
    expect(w.code).toBe(t.code);
    expect(w.code).not.toBe(0);
    expect(w.stderr.replace('w.safetensors', 't.safetensors')).toBe(t.stderr);
    expect(w.stderr).toMatch(/^avg-ckpt: .*beyond the range of the output dtype F16.*\n$/);
    expect(listAll(out)).toEqual([]);
  });

  it('a NaN input in the second chunk is named, as in-thread', async () => {
    const bad = putRun('nan', (k, big) => {
      if (k === 2) big[(2 << 20) + 7] = NaN;
    });
    const out = join(tmp.dir, 'nan-out');
    const args = (o: string) => ['merge', bad, '--dtype', 'bf16', '-o', join(out, o)];
    const [w, t] = await Promise.all([runCli(args('w.safetensors'), { env: WORKER }), runCli(args('t.safetensors'), { env: IN_THREAD })]);
    expect(w.code).not.toBe(0);
    expect(w.code).toBe(t.code);
    expect(w.stderr).toBe(t.stderr);
    expect(w.stderr).toContain('checkpoint-2');
    expect(w.stderr).toContain(`element ${(2 << 20) + 7}`);
    expect(listAll(out)).toEqual([]);
  });

  it('SIGINT while the worker runs: exit 130, nothing left behind, no hang', async () => {
    const big = join(tmp.dir, 'big');
    const n = 24 << 20;
    for (const k of [1, 2]) putSparse(join(big, `checkpoint-${k}`, 'model.safetensors'), [{ name: 'big', dtype: 'F32', shape: [n], bytes: 4 * n }]);
    const out = join(tmp.dir, 'sigint');
    const r = await runCli(['merge', big, '--dtype', 'bf16', '-o', join(out, 'avg.safetensors')], {
      env: WORKER,
      timeoutMs: 30_000,
      during: async (child) => {
        const started = Date.now();
        while (!listAll(out).some((e) => e.includes('.tmp-')) && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 10));
        child.kill('SIGINT');
      },
    });
    expect(r.signal).toBeNull();
    expect(r.code, r.stderr).toBe(130);
    expect(listAll(out)).toEqual([]);
  });
});
