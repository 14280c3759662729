/**
 * Issue 10.4 end to end: a model of another architecture, weights scored as exported, labels
 * that do not fit the metric and a data folder that feeds nothing each say so in one line of
 * their own (exit 1, no onnxruntime C++ text), and --allow-unmapped is listed in every report.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModel, floatValues, loadModel, onnx, type ModelProto } from '../../src/io/onnx/model.js';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { npyBytes } from '../helpers/npy-bytes.js';
import { tempDir } from '../helpers/st-bytes.js';

const MLP = join(ROOT, 'fixtures', 'runs', 'digits-mlp');
const tmp = tempDir('avg-ckpt-e2e-mismatch-');
afterAll(tmp.cleanup);

let base: ModelProto;
function variant(name: string, edit: (m: ModelProto) => void): string {
  const m = onnx.ModelProto.decode(encodeModel(base));
  edit(m);
  const path = join(tmp.dir, name);
  writeFileSync(path, encodeModel(m));
  return path;
}
function rename(m: ModelProto, from: string, to: string): void {
  m.graph!.initializer!.find((t) => t.name === from)!.name = to;
  for (const n of m.graph!.node!) n.input = n.input!.map((i) => (i === from ? to : i));
}

let other: string;
let stale: string;
beforeAll(async () => {
  ensureBuilt();
  base = (await loadModel(join(MLP, 'model.onnx'))).proto;
  // another model of the same shapes: every name and every value differs from the run
  other = variant('other.onnx', (m) => {
    for (const t of [...m.graph!.initializer!]) {
      const v = floatValues(1, t.rawData!).map((_, i) => Math.sin(i + 0.5));
      t.rawData = new Uint8Array(Float32Array.from(v).buffer);
      rename(m, t.name!, `other.${t.name}`);
    }
  });
  // one bias renamed and constant: it matches nothing, the other five bind by name
  stale = variant('stale.onnx', (m) => {
    rename(m, '0.bias', 'layer0.b');
    m.graph!.initializer!.find((t) => t.name === 'layer0.b')!.rawData = new Uint8Array(
      new Float32Array(128).fill(0.25).buffer,
    );
  });
});

const sweep = (model: string, ...extra: string[]) => [
  'sweep-window',
  join(MLP, 'run'),
  '--onnx',
  model,
  '--data',
  MLP,
  '--windows',
  '2,4',
  '--device',
  'cpu',
  ...extra,
];

function oneLine(stderr: string): string {
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => !/^avg-ckpt: (window|device|cuda|graph input)/.test(l));
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).not.toMatch(/\.cc:\d+|onnxruntime::|Status Message/);
  return lines[0];
}

describe('a model that does not belong to the run', () => {
  it('is refused as such with either engine, also with --allow-unmapped', async () => {
    for (const extra of [
      [],
      ['--allow-unmapped', '--engine', 'mixture'],
      ['--allow-unmapped', '--engine', 'materialize'],
    ]) {
      const r = await runCli(sweep(other, ...extra));
      expect(r.code, r.stderr).toBe(1);
      const line = oneLine(r.stderr);
      expect(line).toContain('this model does not belong to these checkpoints: 0 of 6 float initializers match');
      expect(line).toContain('"other.0.weight" [128, 64]');
      expect(line).toContain('"0.weight" [128, 64]');
      expect(line).toMatch(/--map/);
    }
  });

  it('a few unbound initializers get the other message, which counts them', async () => {
    const r = await runCli(sweep(stale));
    expect(r.code).toBe(1);
    const line = oneLine(r.stderr);
    expect(line).toContain("1 of the graph's 6 float initializers match no checkpoint tensor");
    expect(line).not.toContain('does not belong');
  });
});

describe('--allow-unmapped', () => {
  it('scores with both engines alike and lists the exported initializer in the JSON, the table and the HTML', async () => {
    const losses: number[][] = [];
    for (const engine of ['mixture', 'materialize']) {
      const report = join(tmp.dir, `allowed-${engine}.json`);
      const html = join(tmp.dir, `allowed-${engine}.html`);
      const r = await runCli(sweep(stale, '--allow-unmapped', '--engine', engine, '--report', report, '--html', html));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(
        'note: 1 float initializer is not averaged: every candidate uses the exported values of "layer0.b" [128] (--allow-unmapped)',
      );
      const j = JSON.parse(readFileSync(report, 'utf8'));
      expect(j.unmapped).toEqual([{ initializer: 'layer0.b', shape: [128], why: expect.any(String) }]);
      expect(readFileSync(html, 'utf8')).toContain('exported values of &quot;layer0.b&quot; [128]');
      losses.push(j.candidates.map((c: { metrics: { loss: number } }) => c.metrics.loss));
    }
    for (let i = 0; i < losses[0].length; i++) expect(Math.abs(losses[0][i] - losses[1][i])).toBeLessThan(1e-5);
  });

  it('curve lists it too: in the summary, the JSON and the page', async () => {
    const report = join(tmp.dir, 'curve.json');
    const html = join(tmp.dir, 'curve.html');
    const r = await runCli([
      'curve',
      join(MLP, 'run'),
      '--onnx',
      stale,
      '--data',
      MLP,
      '--window',
      '4',
      '--every',
      '20',
      '--allow-unmapped',
      '--device',
      'cpu',
      '--report',
      report,
      '--html',
      html,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      'note: 1 float initializer is not averaged: every candidate uses the exported values of "layer0.b" [128] (--allow-unmapped)',
    );
    expect(JSON.parse(readFileSync(report, 'utf8')).unmapped).toEqual([
      { initializer: 'layer0.b', shape: [128], why: expect.any(String) },
    ]);
    expect(readFileSync(html, 'utf8')).toContain('exported values of &quot;layer0.b&quot; [128]');
  });

  it('a run whose model binds fully has no unmapped list', async () => {
    const report = join(tmp.dir, 'clean.json');
    const r = await runCli(sweep(join(MLP, 'model.onnx'), '--report', report));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(report, 'utf8')).unmapped).toBeUndefined();
    expect(r.stdout).not.toContain('not averaged');
  });
});

describe('labels and data that do not fit', () => {
  const labels = new Float32Array(500).map((_, i) => i % 10);
  const floatLabels = () => {
    const f = join(tmp.dir, 'float-labels.npy');
    writeFileSync(f, npyBytes('<f4', [500], new Uint8Array(labels.buffer)));
    return f;
  };

  it('float labels on a classifier: a message about the labels, for the default metric and for --metric accuracy', async () => {
    const f = floatLabels();
    const args = [
      'sweep-window',
      join(MLP, 'run'),
      '--onnx',
      join(MLP, 'model.onnx'),
      '--input',
      `input=${join(MLP, 'val_input.npy')}`,
      '--labels',
      f,
      '--windows',
      '2',
      '--device',
      'cpu',
    ];
    const byDefault = await runCli(args);
    expect(byDefault.code).toBe(1);
    expect(oneLine(byDefault.stderr)).toBe(
      `avg-ckpt: ${f}: labels are float32, so they are read as regression targets (mse): 1 per row, but output "logits" gives 10 values per row; if they are class indexes, save them as integers (int64) to get loss and accuracy`,
    );
    const accuracy = await runCli([...args, '--metric', 'accuracy']);
    expect(accuracy.code).toBe(1);
    expect(oneLine(accuracy.stderr)).toContain(`${f}: labels are float32; accuracy and loss need integer class labels`);
  });

  it('--data DIR without a matching input lists what it saw and the names it looks for', async () => {
    const dir = join(tmp.dir, 'val');
    mkdirSync(dir);
    cpSync(join(MLP, 'val_labels.npy'), join(dir, 'labels.npy'));
    writeFileSync(join(dir, 'notes.txt'), 'x');
    const r = await runCli([
      'sweep-window',
      join(MLP, 'run'),
      '--onnx',
      join(MLP, 'model.onnx'),
      '--data',
      dir,
      '--windows',
      '2',
    ]);
    expect(r.code).toBe(1);
    const line = oneLine(r.stderr);
    expect(line).toContain('no data for graph input "input" in the data folder');
    expect(line).toContain('labels.npy');
    expect(line).toContain('notes.txt (not a data file)');
    expect(line).toContain('"input" (or val_input, test_input, ...)');
    expect(line).toContain('labels named labels, label, targets, target, y');
  });
});
