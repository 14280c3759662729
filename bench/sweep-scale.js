#!/usr/bin/env node
/**
 * sweep-window at the size of a real model: a GPT-2-small-shaped synthetic graph (token and
 * position embeddings, 12 blocks of LayerNorm -> MatMul 768x2304 -> q*k+v -> MatMul 768x768 and
 * LayerNorm -> MatMul 768x3072 -> Gelu -> MatMul 3072x768 with residuals, a final LayerNorm and
 * the head tied to the token embedding: 123.8M parameters, 495 MB float32, weights as external
 * data), built here with onnx-proto, and KMAX synthetic checkpoints of it. Each measurement runs
 * in a child process of its own, one after the other, so that its peak RSS is its own:
 * - bare: one session with the weights as constants (prepacked), the validation data in one
 *   run: the floor of a candidate. bare-fed: the same weights fed as graph inputs.
 * - each engine at each K: setup, time per candidate (raw, LAWA-2, LAWA-K), peak RSS, losses.
 * Run `npm run build` first. Env: AVG_BENCH_KS (8,16), AVG_BENCH_ENGINES (fed,materialize; auto
 * also prints what --engine auto chose and why),
 * AVG_BENCH_MIXTURE_KS (K values for the mixture, 8: about 5.3 GiB), AVG_BENCH_LAYERS (12), AVG_BENCH_D (768),
 * AVG_BENCH_VOCAB (50257), AVG_BENCH_SEQS (8), AVG_BENCH_T (128), AVG_BENCH_DIR (kept if given).
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { npyBytes, safetensorsHeader } from './files.js';

const env = (k, d) => process.env[`AVG_BENCH_${k}`] ?? d;
const L = Number(env('LAYERS', 12));
const D = Number(env('D', 768));
const V = Number(env('VOCAB', 50257));
const N = Number(env('SEQS', 8));
const T = Number(env('T', 128));
const KS = env('KS', '8,16').split(',').map(Number);
const KMAX = Math.max(...KS, ...env('MIXTURE_KS', '8').split(',').map(Number));
const ENGINES = env('ENGINES', 'fed,materialize').split(',');
const MIXTURE_KS = env('MIXTURE_KS', '8').split(',').filter(Boolean).map(Number);
const root = process.env.AVG_BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'avg-ckpt-bench-scale-'));
const self = fileURLToPath(import.meta.url);

/** The weights in graph order: name, shape. */
function shapes() {
  const out = [
    ['wte', [V, D]],
    ['wpe', [T, D]],
  ];
  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    out.push(
      [`${p}ln_1.weight`, [D]],
      [`${p}ln_1.bias`, [D]],
      [`${p}attn.c_attn.weight`, [D, 3 * D]],
      [`${p}attn.c_attn.bias`, [3 * D]],
      [`${p}attn.c_proj.weight`, [D, D]],
      [`${p}attn.c_proj.bias`, [D]],
      [`${p}ln_2.weight`, [D]],
      [`${p}ln_2.bias`, [D]],
      [`${p}mlp.c_fc.weight`, [D, 4 * D]],
      [`${p}mlp.c_fc.bias`, [4 * D]],
      [`${p}mlp.c_proj.weight`, [4 * D, D]],
      [`${p}mlp.c_proj.bias`, [D]],
    );
  }
  out.push(['ln_f.weight', [D]], ['ln_f.bias', [D]]);
  return out;
}

const numel = (s) => s.reduce((a, b) => a * b, 1);

/** Deterministic weights: LayerNorm gains 1, biases and the rest small uniform values. */
function baseValues(name, shape, seed) {
  const n = numel(shape);
  const v = new Float32Array(n);
  if (name.endsWith('ln_1.weight') || name.endsWith('ln_2.weight') || name === 'ln_f.weight') return v.fill(1);
  const scale = name.endsWith('.bias') ? 0.01 : 0.02;
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return v;
}

/** Checkpoint k's value of a weight: the base drifting a little each save, like the tail of a run. */
const drift = (k) => 1 + 0.01 * Math.sin(k);

function buildModel(run) {
  const { onnx } = run.proto;
  const inits = [];
  let offset = 0;
  const data = openSync(join(root, 'model.onnx.data'), 'w');
  for (const [i, [name, shape]] of shapes().entries()) {
    const v = baseValues(name, shape, i + 1).map((x) => x * drift(KMAX));
    const t = { name, dataType: 1, dims: shape };
    run.setExternal(t, 'model.onnx.data', offset, v.byteLength);
    writeSync(data, new Uint8Array(v.buffer), 0, v.byteLength, offset);
    offset += v.byteLength;
    inits.push(t);
  }
  closeSync(data);
  const node = [];
  const op = (opType, input, output, attribute = []) => node.push({ opType, input, output: [output], attribute });
  const int64 = (name, vals) => inits.push({ name, dataType: 7, dims: [vals.length], int64Data: vals });
  const ln = (x, p, out) =>
    op('LayerNormalization', [x, `${p}.weight`, `${p}.bias`], out, [{ name: 'axis', type: 2, i: -1 }]);
  int64('split3', [D, D, D]);
  int64('rows', [-1, D]);
  int64('logits_shape', [N, T, V]);
  op('Gather', ['wte', 'input_ids'], 'tok');
  op('Add', ['tok', 'wpe'], 'h0');
  let h = 'h0';
  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    ln(h, `${p}ln_1`, `${p}x1`);
    op('MatMul', [`${p}x1`, `${p}attn.c_attn.weight`], `${p}qkv0`);
    op('Add', [`${p}qkv0`, `${p}attn.c_attn.bias`], `${p}qkv`);
    node.push({
      opType: 'Split',
      input: [`${p}qkv`, 'split3'],
      output: [`${p}q`, `${p}k`, `${p}v`],
      attribute: [{ name: 'axis', type: 2, i: -1 }],
    });
    op('Mul', [`${p}q`, `${p}k`], `${p}qk`);
    op('Add', [`${p}qk`, `${p}v`], `${p}a`);
    op('MatMul', [`${p}a`, `${p}attn.c_proj.weight`], `${p}o0`);
    op('Add', [`${p}o0`, `${p}attn.c_proj.bias`], `${p}o`);
    op('Add', [h, `${p}o`], `${p}r1`);
    ln(`${p}r1`, `${p}ln_2`, `${p}x2`);
    op('MatMul', [`${p}x2`, `${p}mlp.c_fc.weight`], `${p}f0`);
    op('Add', [`${p}f0`, `${p}mlp.c_fc.bias`], `${p}f1`);
    op('Gelu', [`${p}f1`], `${p}g`, []);
    op('MatMul', [`${p}g`, `${p}mlp.c_proj.weight`], `${p}m0`);
    op('Add', [`${p}m0`, `${p}mlp.c_proj.bias`], `${p}m`);
    op('Add', [`${p}r1`, `${p}m`], (h = `${p}out`));
  }
  ln(h, 'ln_f', 'hf');
  op('Reshape', ['hf', 'rows'], 'hf2');
  // the head tied to the token embedding, as GPT-2 exports do (Gemm with transB)
  op('Gemm', ['hf2', 'wte'], 'logits2', [{ name: 'transB', type: 2, i: 1 }]);
  op('Reshape', ['logits2', 'logits_shape'], 'logits');
  const vi = (name, elemType, dims) => ({
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  });
  const model = onnx.ModelProto.fromObject({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 20 }],
    graph: {
      name: 'gpt2-shaped',
      node,
      initializer: inits,
      input: [vi('input_ids', 7, [N, T])],
      output: [vi('logits', 1, [N, T, V])],
    },
  });
  writeFileSync(join(root, 'model.onnx'), run.encodeModel(model));
  return offset;
}

function buildRun() {
  mkdirSync(join(root, 'run'), { recursive: true });
  const list = shapes();
  const header = safetensorsHeader(
    list.map(([name, shape]) => ({ name, dtype: 'F32', shape, bytes: numel(shape) * 4 })),
  );
  for (let k = 1; k <= KMAX; k++) {
    const fd = openSync(join(root, 'run', `step_${String(k * 100).padStart(6, '0')}.safetensors`), 'w');
    writeSync(fd, header);
    for (const [i, [name, shape]] of list.entries()) {
      const v = baseValues(name, shape, i + 1).map((x) => x * drift(k));
      writeSync(fd, new Uint8Array(v.buffer));
    }
    closeSync(fd);
  }
  mkdirSync(join(root, 'val'), { recursive: true });
  let s = 7;
  const tok = () => BigInt((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % V);
  writeFileSync(
    join(root, 'val', 'input_ids.npy'),
    npyBytes('<i8', [N, T], BigInt64Array.from({ length: N * T }, tok)),
  );
  writeFileSync(join(root, 'val', 'labels.npy'), npyBytes('<i8', [N, T], BigInt64Array.from({ length: N * T }, tok)));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Child: one bare forward pass setup (constant or fed weights), timed over 3 runs. */
async function childBare(fed) {
  const ort = (await import('onnxruntime-node')).default;
  const { onnx, encodeModel } = await import('../dist/io/onnx/model.js');
  const ids = readFileSync(join(root, 'val', 'input_ids.npy'));
  const body = ids.subarray(ids.length - N * T * 8);
  const feeds = {
    input_ids: new ort.Tensor(
      'int64',
      new BigInt64Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)),
      [N, T],
    ),
  };
  const t0 = performance.now();
  let session;
  if (!fed) {
    session = await ort.InferenceSession.create(join(root, 'model.onnx'));
  } else {
    const m = onnx.ModelProto.decode(readFileSync(join(root, 'model.onnx')));
    const data = readFileSync(join(root, 'model.onnx.data'));
    const g = m.graph;
    const weights = g.initializer.filter((t) => t.dataType === 1);
    g.initializer = g.initializer.filter((t) => t.dataType !== 1);
    for (const t of weights) {
      const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
      const v = new Float32Array(
        data.buffer.slice(data.byteOffset + Number(kv.offset), data.byteOffset + Number(kv.offset) + Number(kv.length)),
      );
      feeds[t.name] = new ort.Tensor('float32', v, t.dims.map(Number));
      g.input.push({
        name: t.name,
        type: { tensorType: { elemType: 1, shape: { dim: t.dims.map((d) => ({ dimValue: Number(d) })) } } },
      });
    }
    session = await ort.InferenceSession.create(encodeModel(m));
  }
  const setup = performance.now() - t0;
  const times = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t);
  }
  return { setup, forward: median(times), times };
}

/** Child: one engine over the K newest checkpoints. */
async function childEngine(engine, k) {
  const { Evaluator } = await import('../dist/eval/evaluator.js');
  const { discoverSeries } = await import('../dist/series/discover.js');
  const { lawa, raw } = await import('../dist/recipes/lawa.js');
  const all = (await discoverSeries([join(root, 'run')])).checkpoints;
  const checkpoints = all.slice(-k);
  const steps = checkpoints.map((c) => c.step);
  const candidates = [raw(steps), lawa(steps, 2), lawa(steps, k)];
  const t0 = performance.now();
  const ev = await Evaluator.create({
    onnx: join(root, 'model.onnx'),
    checkpoints,
    series: all,
    candidates,
    data: { dataDir: join(root, 'val'), batchSize: N },
    engine,
    device: 'cpu',
    memoryBudget: 64 * 2 ** 30,
  });
  const setup = performance.now() - t0;
  const rows = [];
  for (const v of candidates) {
    const t = performance.now();
    const loss = (await ev.score(v)).loss;
    rows.push({ name: v.name, ms: performance.now() - t, loss });
  }
  await ev.close();
  return { setup, rows, reason: ev.engineReason };
}

if (process.argv[2] === 'child') {
  const [, , , what, k] = process.argv;
  const out =
    what === 'bare' || what === 'bare-fed' ? await childBare(what === 'bare-fed') : await childEngine(what, Number(k));
  process.stdout.write(JSON.stringify({ ...out, maxRssGiB: process.resourceUsage().maxRSS / 2 ** 20 }));
  process.exit(0);
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
const t0 = performance.now();
const proto = await import('../dist/io/onnx/model.js');
if (!existsSync(join(root, 'model.onnx'))) {
  buildModel({ proto, setExternal: proto.setExternal, encodeModel: proto.encodeModel });
  buildRun();
}
const modelBytes = shapes().reduce((s, [, shape]) => s + numel(shape) * 4, 0);
console.log(
  `sweep-scale bench: ${(modelBytes / 4 / 1e6).toFixed(1)}M parameters (${(modelBytes / 1e6).toFixed(0)} MB f32; ${L} layers, d ${D}, vocab ${V}), ${KMAX} checkpoints, ${N} x ${T} tokens; ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; files ready in ${((performance.now() - t0) / 1000).toFixed(0)} s; load ${load()}`,
);

function child(...args) {
  const before = load();
  const out = execFileSync(process.execPath, [self, 'child', ...args.map(String)], {
    env: { ...process.env, AVG_BENCH_DIR: root },
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  return { ...JSON.parse(out), load: `${before} -> ${load()}` };
}

for (const what of ['bare', 'bare-fed']) {
  const r = child(what);
  console.log(
    `${what.padEnd(12)} session ${(r.setup / 1000).toFixed(1)} s, forward ${(r.forward / 1000).toFixed(2)} s (runs ${r.times.map((x) => (x / 1000).toFixed(2)).join(', ')}), peak RSS ${r.maxRssGiB.toFixed(2)} GiB; load ${r.load}`,
  );
}
const jobs = [...MIXTURE_KS.map((k) => ['mixture', k]), ...KS.flatMap((k) => ENGINES.map((e) => [e, k]))];
for (const [engine, k] of jobs) {
  const r = child(engine, k);
  const rows = r.rows.map((x) => `${x.name} ${(x.ms / 1000).toFixed(2)} s (loss ${x.loss.toFixed(9)})`).join(', ');
  // the goal for the mixture (issue 13.4): peak RSS <= 1.2 x its stacked bytes + one model
  const peak = r.maxRssGiB * 2 ** 30;
  const stacked =
    engine === 'mixture'
      ? ` (stacked ${((k * modelBytes) / 1e9).toFixed(2)} GB: peak ${(peak / (k * modelBytes)).toFixed(2)}x it, ` +
        `${((peak - modelBytes) / (k * modelBytes)).toFixed(2)}x it + one model)`
      : '';
  console.log(
    `${engine.padEnd(12)} K=${String(k).padEnd(3)} setup ${(r.setup / 1000).toFixed(1)} s, per candidate ${rows}; peak RSS ${r.maxRssGiB.toFixed(2)} GiB${stacked}; load ${r.load}`,
  );
  // what --engine auto chose, and why (a row of its own when ENGINES has auto)
  if (engine === 'auto') console.log(`${''.padEnd(12)}        ${r.reason}`);
}
if (process.env.AVG_BENCH_DIR === undefined) rmSync(root, { recursive: true, force: true });
