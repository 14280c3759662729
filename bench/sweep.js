#!/usr/bin/env node
/**
 * sweep-window bench: time per candidate of the mixture and materialize engines on one
 * synthetic run, measured in the same process, taking turns, and their ratio. Run `npm run build` first.
 *
 * Env: AVG_BENCH_K (checkpoints, 16), AVG_BENCH_MB (MB per checkpoint, 64), AVG_BENCH_LAYERS
 * (square float32 MatMul layers, 4), AVG_BENCH_ROWS (validation rows, 256), AVG_BENCH_BATCH (rows per
 * run, all of them by default), AVG_BENCH_REPEAT (rounds over the candidates, 3), AVG_BENCH_DEVICE
 * (cpu), AVG_BENCH_DIR (scratch folder, removed at the end unless given).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Evaluator } from '../dist/eval/evaluator.js';
import { candidateGrid, touchedSteps } from '../dist/eval/candidates.js';
import { encodeModel, onnx, setExternal } from '../dist/io/onnx/model.js';
import { discoverSeries } from '../dist/series/discover.js';
import { npyBytes, safetensorsHeader } from './files.js';

const K = Number(process.env.AVG_BENCH_K ?? 16);
const MB = Number(process.env.AVG_BENCH_MB ?? 64);
const LAYERS = Number(process.env.AVG_BENCH_LAYERS ?? 4);
const ROWS = Number(process.env.AVG_BENCH_ROWS ?? 256);
const BATCH = Number(process.env.AVG_BENCH_BATCH ?? ROWS);
const REPEAT = Number(process.env.AVG_BENCH_REPEAT ?? 3);
const DEVICE = process.env.AVG_BENCH_DEVICE ?? 'cpu';
const D = Math.round(Math.sqrt((MB * 1e6) / 4 / LAYERS));
const root = process.env.AVG_BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'avg-ckpt-bench-sweep-'));

function safetensors(tensors) {
  const header = safetensorsHeader(
    tensors.map(([name, data]) => ({ name, dtype: 'F32', shape: [D, D], bytes: data.byteLength })),
  );
  return [header, ...tensors.map(([, d]) => Buffer.from(d.buffer, d.byteOffset, d.byteLength))];
}

function makeRun() {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const scale = 1 / Math.sqrt(D);
  const base = Array.from({ length: LAYERS }, () => Float32Array.from({ length: D * D }, () => rand() * scale));
  mkdirSync(join(root, 'run'), { recursive: true });
  // checkpoint k: the base weights drifting a little each save, like the tail of a run
  for (let k = 1; k <= K; k++) {
    const f = 1 + 0.01 * Math.sin(k);
    const tensors = base.map((w, l) => [`layers.${l}.weight`, w.map((x) => x * f)]);
    writeFileSync(
      join(root, 'run', `step_${String(k * 100).padStart(6, '0')}.safetensors`),
      Buffer.concat(safetensors(tensors)),
    );
  }
  // the graph: x -> (MatMul W_l, Relu)* -> logits; its initializers hold the newest checkpoint, as external data
  const nodes = [];
  const inits = [];
  let x = 'input';
  const data = [];
  base.forEach((w, l) => {
    const name = `layers.${l}.weight`;
    const t = { name, dataType: 1, dims: [D, D] };
    setExternal(t, 'model.onnx.data', l * D * D * 4, D * D * 4);
    inits.push(t);
    data.push(Buffer.from(w.map((v) => v * (1 + 0.01 * Math.sin(K))).buffer));
    const y = l === LAYERS - 1 ? 'logits' : `h${l}`;
    nodes.push({ opType: 'MatMul', input: [x, name], output: [l === LAYERS - 1 ? y : `${y}_mm`] });
    if (l < LAYERS - 1) nodes.push({ opType: 'Relu', input: [`${y}_mm`], output: [y] });
    x = y;
  });
  writeFileSync(join(root, 'model.onnx.data'), Buffer.concat(data));
  const vi = (name) => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }, { dimValue: D }] } } },
  });
  writeFileSync(
    join(root, 'model.onnx'),
    encodeModel(
      onnx.ModelProto.fromObject({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 17 }],
        graph: { name: 'bench', node: nodes, initializer: inits, input: [vi('input')], output: [vi('logits')] },
      }),
    ),
  );
  mkdirSync(join(root, 'val'), { recursive: true });
  writeFileSync(
    join(root, 'val', 'input.npy'),
    npyBytes('<f4', [ROWS, D], Float32Array.from({ length: ROWS * D }, rand)),
  );
  writeFileSync(
    join(root, 'val', 'labels.npy'),
    npyBytes(
      '<i8',
      [ROWS],
      BigInt64Array.from({ length: ROWS }, (_, i) => BigInt(i % D)),
    ),
  );
}

async function create(engine, checkpoints, candidates) {
  const rss = process.memoryUsage().rss;
  const t0 = performance.now();
  const ev = await Evaluator.create({
    onnx: join(root, 'model.onnx'),
    checkpoints,
    steps: touchedSteps(candidates),
    data: { dataDir: join(root, 'val'), batchSize: BATCH },
    engine,
    device: DEVICE,
    memoryBudget: 64 * 2 ** 30,
  });
  return {
    engine,
    ev,
    setup: performance.now() - t0,
    rss: process.memoryUsage().rss - rss,
    times: candidates.map(() => []),
    losses: [],
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const t0 = performance.now();
makeRun();
const made = performance.now() - t0;
const series = await discoverSeries([join(root, 'run')]);
const steps = series.checkpoints.map((c) => c.step);
const { candidates } = candidateGrid(steps, { windows: [2, 4, 8, K], ema: [0.5, 0.9] });
console.log(
  `sweep bench: K=${K} checkpoints x ${((LAYERS * D * D * 4) / 1e6).toFixed(1)} MB (${LAYERS} layers ${D}x${D} f32), ${ROWS} rows in runs of ${BATCH}, ${candidates.length} candidates, device ${DEVICE}; ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}; run written in ${(made / 1000).toFixed(1)} s`,
);
// both engines stay open and take turns on every candidate, so a change in the machine's load
// hits both alike; each candidate's time is the median of REPEAT rounds
const results = [];
for (const engine of ['materialize', 'mixture']) results.push(await create(engine, series.checkpoints, candidates));
for (let round = 0; round < REPEAT; round++) {
  for (const [i, v] of candidates.entries()) {
    for (const r of results) {
      const t = performance.now();
      const loss = (await r.ev.score(v)).loss;
      r.times[i].push(performance.now() - t);
      if (round === 0) r.losses.push(loss);
    }
  }
}
for (const r of results) {
  await r.ev.close();
  r.perCandidate = r.times.map(median);
  r.median = median(r.perCandidate);
  console.log(
    `${r.engine.padEnd(12)} setup ${(r.setup / 1000).toFixed(2)} s, RSS +${(r.rss / 2 ** 30).toFixed(2)} GiB, per candidate median ${r.median.toFixed(0)} ms [${candidates.map((c, i) => `${c.name} ${r.perCandidate[i].toFixed(0)}`).join(', ')}]`,
  );
}
const [mat, mix] = results;
const maxDiff = Math.max(...mat.losses.map((l, i) => Math.abs(l - mix.losses[i])));
console.log(
  `ratio materialize/mixture per candidate (medians): ${(mat.median / mix.median).toFixed(1)}x; including setup over ${candidates.length} candidates: ${((mat.setup + mat.median * candidates.length) / (mix.setup + mix.median * candidates.length)).toFixed(1)}x; max |loss difference| between engines ${maxDiff.toExponential(1)}; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
if (process.env.AVG_BENCH_DIR === undefined) rmSync(root, { recursive: true, force: true });
