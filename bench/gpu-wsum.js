#!/usr/bin/env node
/**
 * Would `merge --device gpu` pay? One merge chunk (AVG_WSUM_ELEMENTS, default 2 Mi elements, the
 * engine's CHUNK_ELEMENTS) of K = AVG_WSUM_K (16) float32 checkpoints, combined four ways:
 *   js       the engine's own float64 accumulate (dist/io/float-codec.js), the reference;
 *   ort-EP   an ONNX graph y = Sum_k(a_k * X_k) fed per chunk, float32 (WebGPU has no float64),
 *            timed with the upload and download a merge would need, on every EP that works.
 * For each it reports ms per chunk, GB/s of input, and how many of the chunk's float32 / bf16
 * results differ from the float64 reference rounded once (the project's numerics rule).
 * Writes JSON to AVG_WSUM_OUT (default: stdout only). Needs `npm run build` first.
 */
import { writeFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { accumulate, encode } from '../dist/io/float-codec.js';

const K = Number(process.env.AVG_WSUM_K ?? 16);
const N = Number(process.env.AVG_WSUM_ELEMENTS ?? 2 << 20);
const REPS = Number(process.env.AVG_WSUM_REPS ?? 5);
const onnx = onnxProto.onnx;
ort.env.logLevel = 'fatal';

function wsumModel() {
  const vi = (name, n) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: n }] } } } });
  const node = [];
  for (let k = 0; k < K; k++) node.push({ opType: 'Mul', input: [`x${k}`, `a${k}`], output: [`m${k}`] });
  node.push({ opType: 'Sum', input: node.map((n) => n.output[0]), output: ['y'] });
  const input = [];
  for (let k = 0; k < K; k++) input.push(vi(`x${k}`, N), vi(`a${k}`, 1));
  const model = onnx.ModelProto.fromObject({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'wsum', node, input, output: [vi('y', N)] },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Checkpoint-like values: a shared base plus small per-checkpoint drift, as in a late run. */
function inputs() {
  let s = 12345;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5;
  const base = Float32Array.from({ length: N }, () => rnd() * 0.1);
  return Array.from({ length: K }, () => base.map((b) => b + rnd() * 1e-3));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Elements whose float32 (and bf16) rounding differs from the float64 reference's. */
function mismatches(y, refF32, refBf16) {
  let f32 = 0;
  let bf16 = 0;
  const bits = new Uint32Array(y.buffer, y.byteOffset, y.length);
  for (let i = 0; i < y.length; i++) {
    if (y[i] !== refF32[i]) f32++;
    // y's bf16 rounding, ties to even, from its float32 bits
    const b = (bits[i] + 0x7fff + ((bits[i] >>> 16) & 1)) >>> 16;
    if (b !== refBf16[i]) bf16++;
  }
  return { f32, bf16 };
}

const xs = inputs();
const weights = Array.from({ length: K }, (_, k) => (k + 1) / ((K * (K + 1)) / 2));
const inputGB = (K * N * 4) / 1e9;
const results = [];

// the engine's path, and the reference every other path is checked against
const acc = new Float64Array(N);
const jsTimes = [];
for (let r = 0; r < REPS; r++) {
  const t = performance.now();
  acc.fill(0);
  for (let k = 0; k < K; k++) accumulate('F32', new Uint8Array(xs[k].buffer), acc, weights[k]);
  jsTimes.push(performance.now() - t);
}
const refF32 = new Float32Array(N);
encode('F32', acc, new Uint8Array(refF32.buffer));
const refBf16 = new Uint16Array(N);
encode('BF16', acc, new Uint8Array(refBf16.buffer));
results.push({
  path: 'js float64',
  msPerChunk: median(jsTimes),
  gbPerS: inputGB / (median(jsTimes) / 1e3),
  mismatchF32: 0,
  mismatchBf16: 0,
});

const model = wsumModel();
const feeds = {};
for (let k = 0; k < K; k++) {
  feeds[`x${k}`] = new ort.Tensor('float32', xs[k], [N]);
  feeds[`a${k}`] = new ort.Tensor('float32', new Float32Array([weights[k]]), [1]);
}
for (const ep of ort
  .listSupportedBackends()
  .map((b) => b.name)
  .filter((n) => n !== 'tensorrt')) {
  let session;
  try {
    session = await ort.InferenceSession.create(model, { executionProviders: [ep] });
  } catch (e) {
    results.push({ path: `ort ${ep}`, unavailable: String(e.message).split('\n')[0].slice(0, 160) });
    continue;
  }
  let t = performance.now();
  let y = (await session.run(feeds)).y.data;
  const firstMs = performance.now() - t;
  const times = [];
  for (let r = 0; r < REPS; r++) {
    t = performance.now();
    y = (await session.run(feeds)).y.data;
    times.push(performance.now() - t);
  }
  await session.release();
  const m = mismatches(y, refF32, refBf16);
  results.push({
    path: `ort ${ep} float32`,
    firstMs,
    msPerChunk: median(times),
    gbPerS: inputGB / (median(times) / 1e3),
    mismatchF32: m.f32,
    mismatchBf16: m.bf16,
  });
}

const report = { K, elements: N, inputMB: (inputGB * 1e3).toFixed(1), results };
const json = JSON.stringify(report, null, 2);
if (process.env.AVG_WSUM_OUT) writeFileSync(process.env.AVG_WSUM_OUT, `${json}\n`);
for (const r of results) {
  const cols = r.unavailable
    ? `unavailable: ${r.unavailable}`
    : `${r.msPerChunk.toFixed(1)} ms/chunk  ${r.gbPerS.toFixed(2)} GB/s  differs from the float64 reference: f32 ${r.mismatchF32}/${N}, bf16 ${r.mismatchBf16}/${N}`;
  process.stdout.write(`${r.path.padEnd(20)} ${cols}\n`);
}
