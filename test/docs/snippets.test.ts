/**
 * The docs run as written. Every code block of README.md and docs/*.md is extracted and run:
 * each `avg-ckpt ...` command line (in ```sh blocks, and in unlabelled blocks that start with
 * one) against the bundled fixtures, with the names the docs use (runs/exp1, model.onnx, val/,
 * val_x.npy, val_y.npy) pointing at them; each ```ts block as a module against the built package,
 * imported through its exports like a user's code. Lines that are not avg-ckpt (npm ci, npm test,
 * npm rebuild, the GPU-machine scripts) set up an environment and are not run here; nor are
 * commands on s3:// paths, which need an object store (the S3 suites run them on s3rver), nor
 * snippets that score with the reader's own evaluation script (`--eval-cmd`, `evalCommand`:
 * `eval.py` stands for the user's code; the eval-cmd suites run the bundled example).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/cli.js';

interface Snippet {
  readonly where: string;
  readonly lang: 'sh' | 'ts';
  readonly code: string;
}

/** The code blocks of a Markdown file that are commands or code (unlabelled output blocks are not). */
function snippets(file: string): Snippet[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: Snippet[] = [];
  for (const m of text.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)) {
    const line = text.slice(0, m.index).split('\n').length;
    const lang =
      m[1] === 'sh' || (m[1] === '' && m[2].startsWith('avg-ckpt ')) ? 'sh' : m[1] === 'ts' ? 'ts' : undefined;
    if (lang !== undefined && !m[2].includes('evalCommand')) out.push({ where: `${file}:${line}`, lang, code: m[2] });
  }
  return out;
}

/** The avg-ckpt command lines of a shell block: continuations joined, comments dropped. */
function commands(code: string): string[] {
  return code
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('avg-ckpt ') && !l.includes('s3://') && !l.includes('--eval-cmd'));
}

const FILES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const ALL = FILES.flatMap(snippets);
const FIX = join(ROOT, 'fixtures/runs/digits-mlp');
let scratch: string;
let bin: string;

/** A fresh folder holding the names the docs use (run, model, data, recipes.json), pointing at the bundled run. */
function workdir(): string {
  const dir = mkdtempSync(join(scratch, 'w-'));
  mkdirSync(join(dir, 'runs'));
  symlinkSync(join(FIX, 'run'), join(dir, 'runs/exp1'));
  symlinkSync(join(FIX, 'model.onnx'), join(dir, 'model.onnx'));
  symlinkSync(FIX, join(dir, 'val'));
  symlinkSync(join(FIX, 'val_input.npy'), join(dir, 'val_x.npy'));
  symlinkSync(join(FIX, 'val_labels.npy'), join(dir, 'val_y.npy'));
  symlinkSync(join(ROOT, 'fixtures'), join(dir, 'fixtures'));
  // README's --recipes example, with the recipes its table shows
  writeFileSync(join(dir, 'recipes.json'), '[{"method": "lawa", "k": 8}, {"method": "ema", "decay": 0.9, "last": 20}]');
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules/avg-ckpt'));
  return dir;
}

function run(file: string, args: string[], cwd: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(file, args, {
    cwd,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((res) => child.on('close', (code) => res({ code, stderr })));
}

beforeAll(() => {
  ensureBuilt();
  scratch = mkdtempSync(join(tmpdir(), 'avg-ckpt-docs-'));
  bin = join(scratch, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'avg-ckpt'),
    `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin/avg-ckpt.js')}" "$@"\n`,
    { mode: 0o755 },
  );
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('every snippet of the docs runs', () => {
  it('finds the snippets (README and docs/ have shell and TypeScript blocks)', () => {
    expect(ALL.filter((s) => s.lang === 'sh' && commands(s.code).length > 0).length).toBeGreaterThanOrEqual(8);
    expect(ALL.filter((s) => s.lang === 'ts').length).toBeGreaterThanOrEqual(3);
  });

  for (const s of ALL.filter((x) => x.lang === 'sh' && commands(x.code).length > 0)) {
    it(`${s.where}: ${commands(s.code).length} command(s)`, async () => {
      const dir = workdir();
      for (const line of commands(s.code)) {
        const r = await run('/bin/sh', ['-c', line], dir);
        expect(r.code, `${line}\n${r.stderr}`).toBe(0);
      }
    }, 180_000);
  }

  for (const s of ALL.filter((x) => x.lang === 'ts')) {
    it(`${s.where}: TypeScript through the package's exports`, async () => {
      const dir = workdir();
      // the snippets use no TypeScript-only syntax, so they run as ES modules as they are
      writeFileSync(join(dir, 'snippet.mjs'), s.code);
      const r = await run(process.execPath, ['snippet.mjs'], dir);
      expect(r.code, `${s.code}\n${r.stderr}`).toBe(0);
    }, 180_000);
  }
});
