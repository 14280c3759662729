/**
 * Issue 12.3 for sweeps: `sweep-window --candidates-part I/N --report part-I.json` on N processes,
 * then `report merge part-*.json`, rank the candidates exactly as one sweep does; a missing part
 * is named.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/st-bytes.js';

const mlp = join(ROOT, 'fixtures', 'runs', 'digits-mlp');
const tmp = tempDir('avg-ckpt-e2e-sweep-parts-');
const sweep = (...extra: string[]) => [
  'sweep-window',
  join(mlp, 'run'),
  '--onnx',
  join(mlp, 'model.onnx'),
  '--input',
  `input=${join(mlp, 'val_input.npy')}`,
  '--labels',
  join(mlp, 'val_labels.npy'),
  '--windows',
  '2,3,5',
  '--ema',
  '0.5,0.9',
  '--engine',
  'materialize',
  '-q',
  ...extra,
];
/** The report without timings and the engine's words (they differ run to run). */
const ranked = (text: string) => {
  const r = JSON.parse(text) as { candidates: { ms?: number }[]; best: string; baseline: string; metric: string };
  return { best: r.best, baseline: r.baseline, metric: r.metric, candidates: r.candidates.map(({ ms: _, ...c }) => c) };
};

beforeAll(ensureBuilt);
afterAll(tmp.cleanup);

describe('sweep-window --candidates-part, then report merge', () => {
  it('three parts ranked together equal one sweep', async () => {
    const one = await runCli(sweep('--json'));
    expect(one.code, one.stderr).toBe(0);
    const parts = await Promise.all(
      [0, 1, 2].map((i) => runCli(sweep('--candidates-part', `${i}/3`, '--report', join(tmp.dir, `part-${i}.json`)))),
    );
    for (const p of parts) expect(p.code, p.stderr).toBe(0);
    const merged = await runCli([
      'report',
      'merge',
      ...[2, 0, 1].map((i) => join(tmp.dir, `part-${i}.json`)),
      '--json',
      '--report',
      join(tmp.dir, 'merged.json'),
    ]);
    expect(merged.code, merged.stderr).toBe(0);
    expect(ranked(merged.stdout)).toEqual(ranked(one.stdout));
    expect(ranked(readFileSync(join(tmp.dir, 'merged.json'), 'utf8'))).toEqual(ranked(one.stdout));
    expect(JSON.parse(readFileSync(join(tmp.dir, 'part-1.json'), 'utf8')).part).toMatchObject({ index: 1, count: 3 });
  });

  it('names a missing part', async () => {
    const r = await runCli(['report', 'merge', join(tmp.dir, 'part-0.json'), join(tmp.dir, 'part-2.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('avg-ckpt: part 1 of 3 is missing: run sweep-window --candidates-part I/3 for it');
  });

  it('refuses what needs every candidate, before scoring', async () => {
    const r = await runCli(sweep('--candidates-part', '0/2', '--greedy', '3'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--candidates-part scores a share of the candidates; --greedy needs them all');
  });
});
