#!/usr/bin/env node
/**
 * PyTorch reader benchmark (issue 9 §7): the same run of N checkpoints written twice, as
 * safetensors and as `torch.save` files that also hold the optimizer state (Adam's exp_avg and
 * exp_avg_sq: twice the model again, as real training checkpoints do), then `avg-ckpt merge` of
 * each, alternating, on a warm page cache. Reports median times, the ratio .pt/safetensors
 * measured side by side, and each merge's peak RSS.
 *
 * Environment: AVG_BENCH_CKPTS (8), AVG_BENCH_MB (256, model bytes per checkpoint),
 * AVG_BENCH_PAIRS (3). Needs `npm run build` first (it runs the real CLI and writes the .pt files
 * with dist/'s writer).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { PickleWriter } from '../dist/io/pytorch/state-dict-pickle.js';
import { PtWriter } from '../dist/io/pytorch/writer.js';
import { OUT, ROOT, RUN_SIZE, safetensorsHeader } from './files.js';

const { checkpoints: CKPTS, mb: MB, pairs: PAIRS } = RUN_SIZE;
const CLI = join(ROOT, 'bin', 'avg-ckpt.js');

/** Linear layers [4h, h] with a bias each, filling `MB` of float32 (h = 1024). */
function model() {
  const h = 1024;
  const tensors = [];
  let left = Math.floor((MB * 2 ** 20) / 4);
  for (let l = 0; left >= 4 * h * h + 4 * h; l++) {
    tensors.push({ name: `blocks.${l}.fc.weight`, shape: [4 * h, h] }, { name: `blocks.${l}.fc.bias`, shape: [4 * h] });
    left -= 4 * h * h + 4 * h;
  }
  return tensors.map((t) => ({ ...t, dtype: 'F32', bytes: t.shape.reduce((a, b) => a * b, 1) * 4 }));
}

/** One 4 MiB block of small finite floats per checkpoint, repeated: cheap to write, never NaN. */
function block(seed) {
  const f = new Float32Array(1 << 20);
  let x = seed;
  for (let i = 0; i < f.length; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    f[i] = x / 2 ** 31 / 10 - 0.05;
  }
  return new Uint8Array(f.buffer);
}

function* bytesOf(t, data) {
  for (let left = t.bytes; left > 0; left -= data.byteLength) yield data.subarray(0, Math.min(left, data.byteLength));
}

function writeSafetensors(path, tensors, data) {
  const fd = openSync(path, 'w');
  writeSync(fd, safetensorsHeader(tensors));
  for (const t of tensors) for (const b of bytesOf(t, data)) writeSync(fd, b);
  closeSync(fd);
}

/** `{'step', 'state_dict', 'optimizer': {'state': {i: {'step', 'exp_avg', 'exp_avg_sq'}}, 'param_groups'}}`. */
async function writeTorch(path, step, tensors, data) {
  const storages = [];
  const ref = (t) => {
    storages.push(t);
    return {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      storage: String(storages.length - 1),
      storageNumel: t.bytes / 4,
    };
  };
  const p = new PickleWriter().op(0x80, 0x02, 0x7d, 0x28); // PROTO 2, EMPTY_DICT, MARK
  p.text('step').int(step).text('state_dict').op(0x7d, 0x28);
  for (const t of tensors) p.text(t.name).tensor(ref(t));
  p.op(0x75).text('optimizer').op(0x7d, 0x28).text('state').op(0x7d, 0x28);
  tensors.forEach((t, i) => {
    p.int(i)
      .op(0x7d, 0x28)
      .text('step')
      .tensor(ref({ name: 'step', dtype: 'F32', shape: [], bytes: 4 }));
    p.text('exp_avg').tensor(ref(t)).text('exp_avg_sq').tensor(ref(t)).op(0x75);
  });
  p.op(0x75).text('param_groups').op(0x5d, 0x7d, 0x28).text('params').op(0x5d, 0x28);
  tensors.forEach((_, i) => p.int(i));
  p.op(0x65, 0x75, 0x61, 0x75, 0x75, 0x2e); // APPENDS, SETITEMS, APPEND, SETITEMS (optimizer), SETITEMS (top), STOP
  const layout = {
    tensors: storages.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    storageOf: new Map(),
    pickle: p.done(),
    metadata: {},
  };
  const w = await PtWriter.create(path, layout);
  for (const t of storages) for (const b of bytesOf(t, data)) await w.write(b);
  await w.close();
}

async function makeRuns() {
  const dir = join(OUT, `pt-vs-st-${CKPTS}x${MB}MB`);
  const stamp = join(dir, 'complete');
  const st = join(dir, 'safetensors');
  const pt = join(dir, 'pytorch');
  if (!existsSync(stamp)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(st, { recursive: true });
    mkdirSync(pt, { recursive: true });
    const tensors = model();
    for (let i = 1; i <= CKPTS; i++) {
      process.stderr.write(`generating checkpoint ${i}/${CKPTS} in both formats\n`);
      const data = block(i * 7919);
      writeSafetensors(join(st, `ckpt_step_${i * 1000}.safetensors`), tensors, data);
      await writeTorch(join(pt, `ckpt_step_${i * 1000}.pth`), i * 1000, tensors, data);
    }
    writeFileSync(stamp, '');
  }
  const size = (d, ext) =>
    Array.from({ length: CKPTS }, (_, i) => statSync(join(d, `ckpt_step_${(i + 1) * 1000}${ext}`)).size).reduce(
      (a, b) => a + b,
      0,
    );
  return { st, pt, stBytes: size(st, '.safetensors'), ptBytes: size(pt, '.pth') };
}

/** One merge: wall seconds, CPU seconds (user + system: what the reader costs, whatever else runs), peak RSS. */
function merge(run, output) {
  const t0 = process.hrtime.bigint();
  const cli = [CLI, 'merge', run, '--method', 'lawa', '--last', String(CKPTS), '-o', output, '--force', '-q'];
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, ...cli], { encoding: 'utf8', cwd: ROOT });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`merge of ${run} failed (${r.status}): ${r.stderr}`);
  const num = (re) => Number(re.exec(r.stderr)?.[1] ?? NaN);
  const cpuSeconds = num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/);
  return { seconds, cpuSeconds, peakRssMB: num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
  process.stderr.write('bench/merge-pt.js: dist/ is missing; run `npm run build` first\n');
  process.exit(1);
}
const runs = await makeRuns();
const out = { st: join(OUT, 'merged-st.safetensors'), pt: join(OUT, 'merged-pt.safetensors') };
// warm-up: both runs in the page cache, so the pairs compare the readers, not the disk
merge(runs.st, out.st);
merge(runs.pt, out.pt);
const pairs = [];
for (let p = 0; p < PAIRS; p++) {
  const order = p % 2 === 0 ? ['st', 'pt'] : ['pt', 'st'];
  const pair = {};
  for (const what of order) pair[what] = merge(runs[what], out[what]);
  pair.ratio = pair.pt.seconds / pair.st.seconds;
  pair.cpuRatio = pair.pt.cpuSeconds / pair.st.cpuSeconds;
  pairs.push(pair);
  const show = (m) => `${m.seconds.toFixed(2)} s, CPU ${m.cpuSeconds.toFixed(2)} s, ${m.peakRssMB.toFixed(0)} MB`;
  process.stderr.write(
    `pair ${p + 1}/${PAIRS}: safetensors ${show(pair.st)}; .pt ${show(pair.pt)}; ratio ${pair.ratio.toFixed(3)} (CPU ${pair.cpuRatio.toFixed(3)})\n`,
  );
}
const result = {
  stSeconds: median(pairs.map((x) => x.st.seconds)),
  ptSeconds: median(pairs.map((x) => x.pt.seconds)),
  ratio: median(pairs.map((x) => x.ratio)),
  stCpuSeconds: median(pairs.map((x) => x.st.cpuSeconds)),
  ptCpuSeconds: median(pairs.map((x) => x.pt.cpuSeconds)),
  cpuRatio: median(pairs.map((x) => x.cpuRatio)),
  stPeakRssMB: Math.max(...pairs.map((x) => x.st.peakRssMB)),
  ptPeakRssMB: Math.max(...pairs.map((x) => x.pt.peakRssMB)),
};
for (const f of Object.values(out)) rmSync(f, { force: true });
const machine = {
  nproc: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  ramGB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
};
const config = {
  checkpoints: CKPTS,
  modelMBPerCheckpoint: MB,
  pairs: PAIRS,
  cache: 'warm',
  stBytes: runs.stBytes,
  ptBytes: runs.ptBytes,
  merge: `avg-ckpt merge RUN --method lawa --last ${CKPTS} -o OUT.safetensors --force -q`,
};
writeFileSync(
  join(OUT, 'merge-pt.json'),
  `${JSON.stringify({ date: new Date().toISOString(), machine, config, result, pairs }, null, 2)}\n`,
);
console.log(
  `\nmerge of a .pt run vs the same run as safetensors: ${CKPTS} checkpoints x ${MB} MB of model (.pt files also hold Adam's state: ${(runs.ptBytes / 1e9).toFixed(1)} GB vs ${(runs.stBytes / 1e9).toFixed(1)} GB), ${PAIRS} warm pairs (median); ${machine.nproc} x ${machine.cpu}, ${machine.ramGB} GB\n`,
);
console.log('| input | merge time | CPU (user+sys) | peak RSS |');
console.log('|---|---|---|---|');
console.log(
  `| safetensors | ${result.stSeconds.toFixed(2)} s | ${result.stCpuSeconds.toFixed(2)} s | ${result.stPeakRssMB.toFixed(0)} MB |`,
);
console.log(
  `| .pt (zip, with optimizer state) | ${result.ptSeconds.toFixed(2)} s | ${result.ptCpuSeconds.toFixed(2)} s | ${result.ptPeakRssMB.toFixed(0)} MB |`,
);
console.log(
  `\nratio .pt / safetensors (median of pairs): time ${result.ratio.toFixed(3)}, CPU ${result.cpuRatio.toFixed(3)}\nwrote ${join('bench', 'out', 'merge-pt.json')}`,
);
