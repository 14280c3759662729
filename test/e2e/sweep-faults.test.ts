/**
 * ISSUE 6 parts 1 and 3 for sweep-window: malformed ONNX and .npy inputs give exit 1 with one
 * line naming the file and write nothing; SIGINT/SIGTERM mid-sweep leave no report, no winner,
 * no temporary files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, listAll, ROOT, runCli, snapshot } from '../helpers/cli.js';
import { npyBytes } from '../helpers/npy-bytes.js';
import { put, tempDir } from '../helpers/st-bytes.js';

const MLP = join(ROOT, 'fixtures', 'runs', 'digits-mlp');
const tmp = tempDir('avg-ckpt-e2e-sweep-');
beforeAll(ensureBuilt);
afterAll(tmp.cleanup);
let n = 0;

/** A copy of the digits-mlp validation data and model in a fresh folder, with `edit` applied. */
function dataCase(edit: (dir: string) => void): { dir: string; out: string } {
  const dir = join(tmp.dir, `case${n++}`);
  mkdirSync(dir, { recursive: true });
  for (const f of ['model.onnx', 'val_input.npy', 'val_labels.npy']) copyFileSync(join(MLP, f), join(dir, f));
  edit(dir);
  const out = join(dir, 'out');
  mkdirSync(out);
  return { dir, out };
}

async function expectRejected(dir: string, out: string, file: string) {
  const before = snapshot(dir);
  const runBefore = snapshot(join(MLP, 'run'));
  const r = await runCli([
    'sweep-window',
    join(MLP, 'run'),
    '--onnx',
    join(dir, 'model.onnx'),
    '--input',
    `input=${join(dir, 'val_input.npy')}`,
    '--labels',
    join(dir, 'val_labels.npy'),
    '--windows',
    '2,4',
    '--device',
    'cpu',
    '--report',
    join(out, 'report.json'),
    '--write-best',
    join(out, 'best.safetensors'),
  ]);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toContain(file);
  expect(listAll(out)).toEqual([]);
  expect(snapshot(dir)).toEqual(before);
  expect(snapshot(join(MLP, 'run'))).toEqual(runBefore);
}

const model = (d: string) => join(d, 'model.onnx');
const input = (d: string) => join(d, 'val_input.npy');
const labels = (d: string) => join(d, 'val_labels.npy');

describe('malformed ONNX: exit 1, one line naming the model, nothing written', () => {
  it.each([
    [
      'random bytes',
      (d: string) =>
        put(
          model(d),
          new Uint8Array(200).map((_, i) => (i * 37 + 11) & 0xff),
        ),
    ],
    ['truncated to half', (d: string) => put(model(d), readFileSync(join(MLP, 'model.onnx')).subarray(0, 1000))],
    [
      'a safetensors file given as the model',
      (d: string) => copyFileSync(join(MLP, 'run', 'checkpoint-20', 'model.safetensors'), model(d)),
    ],
  ])('%s', async (_l, edit) => {
    const { dir, out } = dataCase(edit);
    await expectRejected(dir, out, model(dir));
  });
});

// (more malformed .npy/.npz variants are checked at the parser level in test/io/npy-fuzz.test.ts)
describe('malformed .npy: exit 1, one line naming the file, nothing written', () => {
  it.each([
    ['input: not a .npy', (d: string) => put(input(d), 'hello'), input],
    [
      'input: truncated data',
      (d: string) => put(input(d), readFileSync(join(MLP, 'val_input.npy')).subarray(0, 5000)),
      input,
    ],
    [
      'input: big-endian dtype',
      (d: string) => put(input(d), npyBytes('>f4', [500, 64], new Uint8Array(500 * 64 * 4))),
      input,
    ],
    [
      'labels: header runs past the end',
      (d: string) => put(labels(d), readFileSync(join(MLP, 'val_labels.npy')).subarray(0, 40)),
      labels,
    ],
  ] as const)('%s', async (_l, edit, which) => {
    const { dir, out } = dataCase(edit);
    await expectRejected(dir, out, which(dir));
  });
});

describe('FIFOs where the model or data is expected', () => {
  // Regression: readFile on a FIFO blocked forever, keeping the process alive past SIGTERM;
  // every reader now refuses anything but a regular file (src/io/storage/local.ts).
  it.each([
    ['the ONNX model', model],
    ['the input .npy', input],
    ['the labels .npy', labels],
  ] as const)('%s is a FIFO: exit 1 naming it, promptly', async (_l, which) => {
    const { dir, out } = dataCase((d) => {
      rmSync(which(d));
      execFileSync('mkfifo', [which(d)]);
    });
    const r = await runCli(
      [
        'sweep-window',
        join(MLP, 'run'),
        '--onnx',
        model(dir),
        '--input',
        `input=${input(dir)}`,
        '--labels',
        labels(dir),
        '--windows',
        '2',
        '--device',
        'cpu',
        '--report',
        join(out, 'r.json'),
      ],
      { timeoutMs: 10_000 },
    );
    expect(r.signal, 'the process hung on the FIFO').toBeNull();
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(which(dir));
    expect(listAll(out)).toEqual([]);
  });
});

describe('interrupted mid-sweep', () => {
  /** 100x the validation rows, so each candidate takes a while. */
  let big: string;
  beforeAll(() => {
    big = join(tmp.dir, 'bigdata');
    const x = readFileSync(join(MLP, 'val_input.npy'));
    const y = readFileSync(join(MLP, 'val_labels.npy'));
    const xs = x.subarray(x.length - 500 * 64 * 4);
    const ys = y.subarray(y.length - 500 * 8);
    const R = 100;
    const X = new Uint8Array(xs.length * R);
    const Y = new Uint8Array(ys.length * R);
    for (let i = 0; i < R; i++) {
      X.set(xs, i * xs.length);
      Y.set(ys, i * ys.length);
    }
    put(join(big, 'input.npy'), npyBytes('<f4', [500 * R, 64], X));
    put(join(big, 'labels.npy'), npyBytes('<i8', [500 * R], Y));
  });

  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    // Regression: the materialize engine's copy of the model in TMPDIR was unknown to the signal
    // handler and stayed behind; it is now registered with the temporary outputs.
    it(`${sig}: exit ${code}, says interrupted, no report, no winner, no temporary files (also none in TMPDIR)`, async () => {
      const out = join(tmp.dir, `sig-out-${sig}`);
      mkdirSync(out);
      const tmpdirOfChild = join(tmp.dir, `tmpdir-${sig}`);
      mkdirSync(tmpdirOfChild);
      let alive = false;
      const r = await runCli(
        [
          'sweep-window',
          join(MLP, 'run'),
          '--onnx',
          join(MLP, 'model.onnx'),
          '--input',
          `input=${join(big, 'input.npy')}`,
          '--labels',
          join(big, 'labels.npy'),
          '--windows',
          Array.from({ length: 60 }, (_, i) => i + 1).join(','),
          '--engine',
          'materialize',
          '--device',
          'cpu',
          '--report',
          join(out, 'report.json'),
          '--write-best',
          join(out, 'best.safetensors'),
        ],
        {
          during: async (child) => {
            await new Promise((res) => setTimeout(res, 2500)); // past start-up: data loaded, candidates running
            alive = child.exitCode === null && child.signalCode === null;
            child.kill(sig);
          },
          timeoutMs: 120_000,
          env: { TMPDIR: tmpdirOfChild },
        },
      );
      expect(alive, 'the sweep finished before the signal: make it longer').toBe(true);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toContain('interrupted');
      expect(listAll(out)).toEqual([]);
      expect(existsSync(join(out, 'report.json'))).toBe(false);
      // (onnxruntime itself leaves `.ses` and an empty `mat-debug-<pid>.log` in TMPDIR: not ours)
      expect(listAll(tmpdirOfChild).filter((e) => e.startsWith('avg-ckpt'))).toEqual([]);
    });
  }
});
