#!/usr/bin/env node
/**
 * Merge benchmark: a synthetic run of N checkpoints per dtype, then rounds in which a plain read
 * of the input bytes and `avg-ckpt merge --threads T` of the same files for each T take turns
 * (the order rotates from round to round), each once cold (page cache dropped first) and once
 * warm (the inputs read just before). Reports medians, each merge's throughput against the
 * read's in the same round, the speed-up over one thread, peak RSS and CPU seconds.
 *
 * Then, when AVG_BENCH_RECIPES (M, default 4) is not 0, several recipes: M LAWA windows
 * written in one pass (`--last 2,4,6,8 -o 'DIR/{name}.safetensors'`) against the same M
 * written by M separate merges and against one merge (LAWA over all), side by side in rounds.
 *
 * Environment: AVG_BENCH_CKPTS (8), AVG_BENCH_MB (256, per checkpoint), AVG_BENCH_PAIRS (3
 * rounds), AVG_BENCH_DTYPES (f32,bf16), AVG_BENCH_THREADS (1..nproc; 0 skips that part),
 * AVG_BENCH_LAST (the --last of the threads part: N, the checkpoints, by default; a list such as
 * 2,4,6,8 writes several outputs in one pass, more arithmetic per byte read),
 * AVG_BENCH_MODES (cold,warm), AVG_BENCH_RECIPES (4; 0 skips that part), AVG_BENCH_CLI
 * (bin/avg-ckpt.js: point it at a copy of another build to compare builds, or to keep a rebuild
 * of dist/ from landing mid-run). Needs `npm run build` first; it runs the real CLI.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { safetensorsHeader } from './files.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'bench', 'out');
const CKPTS = Number(process.env.AVG_BENCH_CKPTS ?? 8);
const MB = Number(process.env.AVG_BENCH_MB ?? 256);
const PAIRS = Number(process.env.AVG_BENCH_PAIRS ?? 3);
const DTYPES = (process.env.AVG_BENCH_DTYPES ?? 'f32,bf16').split(',');
const THREADS = (
  process.env.AVG_BENCH_THREADS ?? Array.from({ length: availableParallelism() }, (_, i) => i + 1).join(',')
)
  .split(',')
  .map(Number)
  .filter((t) => t > 0);
const MODES = (process.env.AVG_BENCH_MODES ?? 'cold,warm').split(',');
const RECIPES = Number(process.env.AVG_BENCH_RECIPES ?? 4);
const LAST = process.env.AVG_BENCH_LAST ?? String(CKPTS);
const READ_BS = '16M';
const CLI = process.env.AVG_BENCH_CLI ?? join(ROOT, 'bin', 'avg-ckpt.js');

// ---- synthetic run ----------------------------------------------------------------------------

/**
 * A transformer-like tensor mix filling `elements`: an embedding, layers of large matrices each
 * with ten small vectors (norms, biases), a head taking the remainder, and one I64 tensor (copied,
 * not averaged).
 */
function tensorMix(elements) {
  let h = 1024;
  while (h > 64 && 20 * h * h > elements) h /= 2;
  const list = [{ name: 'embed.weight', shape: [8 * h, h] }];
  let left = elements - 8 * h * h;
  for (let l = 0; left >= 12 * h * h + 13 * h; l++) {
    const p = `layers.${l}.`;
    for (const m of ['q', 'k', 'v', 'o'])
      list.push({ name: `${p}attn.${m}.weight`, shape: [h, h] }, { name: `${p}attn.${m}.bias`, shape: [h] });
    list.push({ name: `${p}mlp.up.weight`, shape: [4 * h, h] }, { name: `${p}mlp.up.bias`, shape: [4 * h] });
    list.push({ name: `${p}mlp.down.weight`, shape: [h, 4 * h] }, { name: `${p}mlp.down.bias`, shape: [h] });
    for (const n of ['ln1', 'ln2'])
      list.push({ name: `${p}${n}.weight`, shape: [h] }, { name: `${p}${n}.bias`, shape: [h] });
    left -= 12 * h * h + 13 * h;
  }
  if (left >= 2 * h) {
    list.push({ name: 'final_norm.weight', shape: [h] });
    left -= h;
    list.push({ name: 'lm_head.weight', shape: [Math.floor(left / h), h] });
  }
  return list;
}

/** xorshift32 values in [-0.05, 0.05): finite, cheap, incompressible enough. */
function filler(seed) {
  let x = seed | 1;
  return (f32) => {
    for (let i = 0; i < f32.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      f32[i] = (x >>> 0) * (0.1 / 2 ** 32) - 0.05;
    }
  };
}

/** Writes one safetensors file sequentially through a 4 MiB buffer (bounded memory). */
function writeCheckpoint(path, dtype, tensors, seed) {
  const size = dtype === 'f32' ? 4 : 2;
  const st = dtype === 'f32' ? 'F32' : 'BF16';
  const all = [
    ...tensors.map((t) => ({ ...t, dtype: st, size })),
    { name: 'position_ids', shape: [1, 2048], dtype: 'I64', size: 8 },
  ];
  const fd = openSync(path, 'w');
  writeSync(
    fd,
    safetensorsHeader(
      all.map((t) => ({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        bytes: t.shape.reduce((a, b) => a * b, 1) * t.size,
      })),
    ),
  );
  const fill = filler(seed);
  const f32 = new Float32Array(1 << 20);
  const u32 = new Uint32Array(f32.buffer);
  const u16 = new Uint16Array(f32.length);
  for (const t of all) {
    let n = t.shape.reduce((a, b) => a * b, 1);
    if (t.dtype === 'I64') {
      const ids = new BigInt64Array(n).map((_, i) => BigInt(i));
      writeSync(fd, new Uint8Array(ids.buffer));
      continue;
    }
    while (n > 0) {
      const k = Math.min(n, f32.length);
      fill(f32.subarray(0, k));
      if (size === 4) writeSync(fd, new Uint8Array(f32.buffer, 0, k * 4));
      else {
        for (let i = 0; i < k; i++) u16[i] = u32[i] >>> 16; // truncation: any finite f32 gives a finite bf16
        writeSync(fd, new Uint8Array(u16.buffer, 0, k * 2));
      }
      n -= k;
    }
  }
  closeSync(fd);
}

function makeRun(dtype) {
  const dir = join(OUT, `run-${dtype}-${CKPTS}x${MB}MB`);
  const stamp = join(dir, 'complete');
  const files = Array.from({ length: CKPTS }, (_, i) => join(dir, `checkpoint-${(i + 1) * 1000}`, 'model.safetensors'));
  if (!existsSync(stamp)) {
    rmSync(dir, { recursive: true, force: true });
    const tensors = tensorMix(Math.floor((MB * 2 ** 20) / (dtype === 'f32' ? 4 : 2)));
    process.stderr.write(`generating ${dir} (${tensors.length + 1} tensors per checkpoint)\n`);
    files.forEach((f, i) => {
      mkdirSync(dirname(f), { recursive: true });
      writeCheckpoint(f, dtype, tensors, 0x9e3779b9 * (i + 1));
    });
    writeFileSync(stamp, '');
  }
  return { dir, files, bytes: files.reduce((a, f) => a + statSync(f).size, 0) };
}

// ---- measuring --------------------------------------------------------------------------------

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) throw r.error;
  return r;
}

let dropMethod;

/**
 * Empties the page cache of `files`. Writing drop_caches needs root (or a VM that allows it);
 * without it, `dd iflag=nocache count=0` calls posix_fadvise(DONTNEED) on each whole file,
 * which evicts its clean pages for any user that can read it (hence the sync first).
 */
function dropCaches(files) {
  sh('sync', []);
  if (dropMethod === undefined || dropMethod === 'drop_caches') {
    try {
      writeFileSync('/proc/sys/vm/drop_caches', '3');
      dropMethod = 'drop_caches';
      return;
    } catch (e) {
      process.stderr.write(
        `cannot write /proc/sys/vm/drop_caches (${e.code}); evicting the inputs with posix_fadvise(DONTNEED) via dd iflag=nocache instead\n`,
      );
      dropMethod = 'fadvise';
    }
  }
  for (const f of files) sh('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** Bytes of `files` still in the page cache (fincore), to show the drop worked. */
function cachedBytes(files) {
  const r = sh('fincore', ['--bytes', '--noheadings', '--output', 'RES', ...files]);
  if (r.status !== 0) return undefined;
  return r.stdout
    .trim()
    .split('\n')
    .reduce((a, l) => a + Number(l.trim()), 0);
}

function timed(fn) {
  const t0 = process.hrtime.bigint();
  const r = fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, r };
}

function plainRead(files) {
  const script = `for f in "$@"; do dd if="$f" of=/dev/null bs=${READ_BS} status=none || exit 1; done`;
  const { seconds, r } = timed(() => sh('sh', ['-c', script, 'read', ...files]));
  if (r.status !== 0) throw new Error(`plain read failed: ${r.stderr}`);
  return seconds;
}

const HAVE_TIME = existsSync('/usr/bin/time');

/** `avg-ckpt merge RUN ARGS`, timed, with its peak RSS and CPU seconds. */
function cliMerge(run, mergeArgs) {
  const cli = [CLI, 'merge', run.dir, ...mergeArgs, '--force', '-q'];
  const [cmd, args] = HAVE_TIME
    ? ['/usr/bin/time', ['-v', process.execPath, ...cli]]
    : [process.execPath, [join(ROOT, 'bench', 'rss.js'), ...cli]];
  const { seconds, r } = timed(() => sh(cmd, args, { cwd: ROOT }));
  if (r.status !== 0) throw new Error(`merge failed (${r.status}): ${r.stderr}`);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr) ?? /maxRSS_kB=(\d+)/.exec(r.stderr);
  // CPU seconds (user + system) barely depend on what else runs on the machine; wall time does.
  const cpu = [/User time \(seconds\): ([\d.]+)/, /System time \(seconds\): ([\d.]+)/].reduce(
    (a, re) => a + Number(re.exec(r.stderr)?.[1] ?? NaN),
    0,
  );
  return { seconds, peakRssMB: m ? Number(m[1]) / 1024 : NaN, cpuSeconds: cpu };
}

/** The threads part's merge: one output, or a folder of outputs when LAST lists several windows. */
function merge(run, output, threads) {
  const out = LAST.includes(',') ? join(output, '{name}.safetensors') : output;
  return cliMerge(run, ['--method', 'lawa', '--last', LAST, '--threads', String(threads), '-o', out]);
}

/** The M LAWA windows of the recipes bench: 2, 4, 6, 8 for M = 4 over 8 checkpoints. */
function recipeWindows() {
  return Array.from({ length: RECIPES }, (_, i) => Math.max(1, Math.round((CKPTS * (i + 1)) / RECIPES)));
}

/** The recipes bench's contenders: one pass for all M, M separate merges, one merge. */
function recipesRound(run, dir, what) {
  const windows = recipeWindows();
  if (what === 'one-pass')
    return cliMerge(run, ['--method', 'lawa', '--last', windows.join(','), '-o', join(dir, '{name}.safetensors')]);
  if (what === 'one-merge')
    return cliMerge(run, ['--method', 'lawa', '--last', String(CKPTS), '-o', join(dir, 'one.safetensors')]);
  const each = windows.map((k) =>
    cliMerge(run, ['--method', 'lawa', '--last', String(k), '-o', join(dir, `lawa-${k}.safetensors`)]),
  );
  return {
    seconds: each.reduce((a, r) => a + r.seconds, 0),
    peakRssMB: Math.max(...each.map((r) => r.peakRssMB)),
    cpuSeconds: each.reduce((a, r) => a + r.cpuSeconds, 0),
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ---- main -------------------------------------------------------------------------------------

if (process.env.AVG_BENCH_CLI === undefined && !existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
  process.stderr.write('bench/merge.js: dist/ is missing; run `npm run build` first\n');
  process.exit(1);
}
mkdirSync(OUT, { recursive: true });
const results = [];
const recipeResults = [];
for (const dtype of DTYPES) {
  const run = makeRun(dtype);
  const output = join(OUT, LAST.includes(',') ? `merged-${dtype}` : `merged-${dtype}.safetensors`);
  const contenders = ['read', ...THREADS.map((t) => `merge-${t}`)];
  for (const mode of THREADS.length > 0 ? MODES : []) {
    const rounds = [];
    for (let p = 0; p < PAIRS; p++) {
      // rotate the order, so that a drift over time does not favour one contender
      const order = contenders.map((_, i) => contenders[(i + p) % contenders.length]);
      const round = {};
      for (const what of order) {
        if (mode === 'cold') dropCaches([...run.files, output].filter((f) => existsSync(f) && statSync(f).isFile()));
        else plainRead(run.files); // warm: the inputs were just read
        const m = { cachedBeforeMB: (cachedBytes(run.files) ?? NaN) / 1e6, load1: loadavg()[0] };
        if (what === 'read') m.seconds = plainRead(run.files);
        else Object.assign(m, merge(run, output, Number(what.slice(6))));
        round[what] = m;
      }
      rounds.push(round);
      const line = contenders.map((c) => `${c} ${round[c].seconds.toFixed(2)} s`).join(', ');
      process.stderr.write(`${dtype} ${mode} round ${p + 1}/${PAIRS}: ${line}; load ${round.read.load1.toFixed(1)}\n`);
    }
    const med = (f) => median(rounds.map(f));
    const readS = med((r) => r.read.seconds);
    const oneS = THREADS.includes(1) ? med((r) => r['merge-1'].seconds) : NaN;
    for (const t of THREADS) {
      const k = `merge-${t}`;
      results.push({
        dtype,
        mode,
        threads: t,
        inputBytes: run.bytes,
        readMBps: run.bytes / 1e6 / readS,
        mergeMBps: run.bytes / 1e6 / med((r) => r[k].seconds),
        ratio: med((r) => r.read.seconds / r[k].seconds),
        speedup: oneS / med((r) => r[k].seconds),
        peakRssMB: Math.max(...rounds.map((r) => r[k].peakRssMB)),
        cpuSeconds: med((r) => r[k].cpuSeconds),
        // cores kept busy: CPU seconds (the reads' copies in libuv's pool included) per wall second
        coresBusy: med((r) => r[k].cpuSeconds / r[k].seconds),
        load1: median(rounds.flatMap((r) => contenders.map((c) => r[c].load1))),
        rounds: rounds.map((r) => ({ read: r.read.seconds, merge: r[k].seconds })),
      });
    }
  }
  if (RECIPES > 0) {
    const dir = join(OUT, `recipes-${dtype}`);
    const contenders = ['one-merge', 'one-pass', 'separate'];
    for (const mode of MODES) {
      const rounds = [];
      for (let p = 0; p < PAIRS; p++) {
        const round = {};
        for (const what of contenders.map((_, i) => contenders[(i + p) % contenders.length])) {
          rmSync(dir, { recursive: true, force: true });
          mkdirSync(dir, { recursive: true });
          if (mode === 'cold') dropCaches(run.files);
          else plainRead(run.files);
          round[what] = { ...recipesRound(run, dir, what), load1: loadavg()[0] };
        }
        rounds.push(round);
        const line = contenders.map((c) => `${c} ${round[c].seconds.toFixed(2)} s`).join(', ');
        process.stderr.write(`${dtype} ${mode} recipes (M = ${RECIPES}) round ${p + 1}/${PAIRS}: ${line}\n`);
      }
      const med = (f) => median(rounds.map(f));
      recipeResults.push({
        dtype,
        mode,
        recipes: RECIPES,
        windows: recipeWindows(),
        oneMergeSeconds: med((r) => r['one-merge'].seconds),
        onePassSeconds: med((r) => r['one-pass'].seconds),
        separateSeconds: med((r) => r.separate.seconds),
        passVsSeparate: med((r) => r.separate.seconds / r['one-pass'].seconds),
        passVsOneMerge: med((r) => r['one-pass'].seconds / r['one-merge'].seconds),
        onePassPeakRssMB: Math.max(...rounds.map((r) => r['one-pass'].peakRssMB)),
        oneMergePeakRssMB: Math.max(...rounds.map((r) => r['one-merge'].peakRssMB)),
        onePassCpuSeconds: med((r) => r['one-pass'].cpuSeconds),
        separateCpuSeconds: med((r) => r.separate.cpuSeconds),
        load1: median(rounds.flatMap((r) => contenders.map((c) => r[c].load1))),
        rounds: rounds.map((r) => Object.fromEntries(contenders.map((c) => [c, r[c].seconds]))),
      });
    }
    rmSync(dir, { recursive: true, force: true });
  }
  rmSync(output, { recursive: true, force: true });
}

const machine = {
  nproc: Number(sh('nproc', []).stdout.trim()),
  cpu: cpus()[0]?.model ?? 'unknown',
  ramGB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  filesystem: sh('df', ['--output=source,fstype', OUT]).stdout.trim().split('\n').pop().replace(/\s+/, ' '),
};
const config = {
  checkpoints: CKPTS,
  mbPerCheckpoint: MB,
  rounds: PAIRS,
  threads: THREADS,
  modes: MODES,
  cacheDrop: dropMethod,
  read: `dd bs=${READ_BS} of=/dev/null, files in order`,
  merge: `avg-ckpt merge RUN --method lawa --last ${LAST} --threads T -o OUT --force -q`,
  rss: HAVE_TIME ? '/usr/bin/time -v' : 'process.resourceUsage().maxRSS',
};
writeFileSync(
  join(OUT, 'merge.json'),
  `${JSON.stringify({ date: new Date().toISOString(), machine, config, results, recipeResults }, null, 2)}\n`,
);

const f = (x, d = 0) => x.toFixed(d);
console.log(
  `\nmerge --last ${LAST}: ${CKPTS} checkpoints x ${MB} MB, ${PAIRS} rounds (median), cache drop: ${dropMethod}; ${machine.nproc} x ${machine.cpu}, ${machine.ramGB} GB, ${machine.filesystem}\n`,
);
console.log(
  '| dtype | cache | threads | read MB/s | merge MB/s | merge/read | speed-up vs 1 thread | peak RSS | CPU (user+sys) | cores busy | load avg (1 min) |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.dtype} | ${r.mode} | ${r.threads} | ${f(r.readMBps)} | ${f(r.mergeMBps)} | ${f(r.ratio, 2)} | ${f(r.speedup, 2)} | ${f(r.peakRssMB)} MB | ${f(r.cpuSeconds, 2)} s | ${f(r.coresBusy, 2)} | ${f(r.load1, 1)} |`,
  );
}
if (recipeResults.length > 0) {
  console.log(
    `\nseveral recipes: LAWA windows ${recipeWindows().join(', ')} in one pass, against ${RECIPES} separate merges and one merge (LAWA ${CKPTS}); medians of ${PAIRS} rounds\n`,
  );
  console.log(
    '| dtype | cache | one merge | one pass (M outputs) | M separate merges | separate / one pass | one pass / one merge | peak RSS one pass (one merge) | CPU one pass (separate) | load avg |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of recipeResults) {
    console.log(
      `| ${r.dtype} | ${r.mode} | ${f(r.oneMergeSeconds, 2)} s | ${f(r.onePassSeconds, 2)} s | ${f(r.separateSeconds, 2)} s | ${f(r.passVsSeparate, 2)} | ${f(r.passVsOneMerge, 2)} | ${f(r.onePassPeakRssMB)} (${f(r.oneMergePeakRssMB)}) MB | ${f(r.onePassCpuSeconds, 2)} (${f(r.separateCpuSeconds, 2)}) s | ${f(r.load1, 1)} |`,
    );
  }
}
console.log(`\nwrote ${join('bench', 'out', 'merge.json')}`);
