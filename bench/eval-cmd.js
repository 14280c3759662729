#!/usr/bin/env node
/**
 * `--eval-cmd` benchmark: the candidates of a sweep written in batches of `--jobs`, one pass over
 * the checkpoints per batch (CommandScorer.scoreAll, what sweep-window and curve do), against
 * the same candidates each written by its own merge (CommandScorer.score per candidate, `--jobs`
 * at a time: what they did before batching). The command is `sh -c "echo 1"`, so the time is the
 * writing of the candidates, not an evaluation. Each mode runs in its own child process under
 * GNU time (peak RSS, CPU), the order alternating from round to round; cold (the inputs evicted
 * from the page cache first, with posix_fadvise(DONTNEED) through `dd iflag=nocache`, as a run
 * larger than memory or on another machine would be) and warm (read just before).
 *
 * Environment: AVG_BENCH_CKPTS (8), AVG_BENCH_MB (64, per checkpoint, f32), AVG_BENCH_PAIRS (3
 * rounds), AVG_BENCH_JOBS (2,6), AVG_BENCH_MODES (cold,warm). The grid: the newest raw
 * checkpoint, LAWA 2, 4, 8 and EMA 0.8, 0.9 (6 candidates). Needs `npm run build` first.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { OUT, ROOT, safetensorsHeader } from './files.js';

const CKPTS = Number(process.env.AVG_BENCH_CKPTS ?? 8);
const MB = Number(process.env.AVG_BENCH_MB ?? 64);
const PAIRS = Number(process.env.AVG_BENCH_PAIRS ?? 3);
const JOBS = (process.env.AVG_BENCH_JOBS ?? '2,6').split(',').map(Number);
const MODES = (process.env.AVG_BENCH_MODES ?? 'cold,warm').split(',');
const GRID = { windows: [2, 4, 8], ema: [0.8, 0.9] };
const COMMAND = 'sh -c "echo 1" {path}';

/** One mode in this process (the child): prints the seconds and the candidates scored. */
async function child(mode, run, jobs, scratch) {
  const { discoverSeries } = await import(join(ROOT, 'dist', 'series', 'discover.js'));
  const { candidateGrid } = await import(join(ROOT, 'dist', 'eval', 'candidates.js'));
  const { CommandScorer } = await import(join(ROOT, 'dist', 'eval', 'command-scorer.js'));
  const { outcomeOf, scoreEach } = await import(join(ROOT, 'dist', 'eval', 'scorer.js'));
  const { checkpoints } = await discoverSeries([run]);
  const { candidates } = candidateGrid(
    checkpoints.map((c) => c.step),
    GRID,
  );
  const scorer = await CommandScorer.create({ command: COMMAND, checkpoints, scratch, jobs });
  const t0 = performance.now();
  const outcomes = [];
  if (mode === 'batched') await scoreEach(scorer, candidates, (i, o) => (outcomes[i] = o));
  else {
    // the flow before batching: `jobs` workers, each writing a candidate by its own merge, then running its command
    let next = 0;
    const worker = async () => {
      while (next < candidates.length) {
        const i = next++;
        outcomes[i] = await outcomeOf(scorer, candidates[i]);
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
  }
  const seconds = (performance.now() - t0) / 1000;
  await scorer.close();
  if (outcomes.filter((o) => 'metrics' in o).length !== candidates.length) throw new Error('a candidate failed');
  // bytes this process read through read(2) and friends, page cache or not: the checkpoints, mostly
  const rchar = Number(/rchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))[1]);
  process.stdout.write(`${JSON.stringify({ seconds, rchar, candidates: candidates.length })}\n`);
}

/** 8 checkpoints of `MB` MiB: four f32 matrices each, deterministic values in [-0.05, 0.05). */
function makeRun() {
  const dir = join(OUT, `evalcmd-run-${CKPTS}x${MB}MB`);
  const stamp = join(dir, 'complete');
  if (existsSync(stamp)) return dir;
  rmSync(dir, { recursive: true, force: true });
  const rows = Math.floor((MB * 2 ** 20) / 4 / 4 / 1024);
  const tensors = [0, 1, 2, 3].map((i) => ({ name: `w${i}`, dtype: 'F32', shape: [rows, 1024], bytes: rows * 4096 }));
  for (let c = 0; c < CKPTS; c++) {
    const file = join(dir, `checkpoint-${(c + 1) * 100}`, 'model.safetensors');
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(file, 'w');
    writeSync(fd, safetensorsHeader(tensors));
    const block = new Float32Array(rows * 1024);
    let x = 0x9e3779b9 * (c + 1);
    for (const _ of tensors) {
      for (let i = 0; i < block.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        block[i] = (x >>> 0) * (0.1 / 2 ** 32) - 0.05;
      }
      writeSync(fd, new Uint8Array(block.buffer));
    }
    closeSync(fd);
  }
  writeFileSync(stamp, '');
  return dir;
}

const inputs = (run) =>
  Array.from({ length: CKPTS }, (_, c) => join(run, `checkpoint-${(c + 1) * 100}`, 'model.safetensors'));

/** Cold: every input evicted from the page cache; warm: every input read whole just before. */
function prepare(run, cache) {
  for (const file of inputs(run)) {
    if (cache === 'warm') readFileSync(file);
    else spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
  }
}

function measure(mode, run, jobs, cache) {
  prepare(run, cache);
  const scratch = join(OUT, `evalcmd-scratch-${mode}`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const r = spawnSync(
    '/usr/bin/time',
    ['-v', process.execPath, new URL(import.meta.url).pathname, '--child', mode, run, String(jobs), scratch],
    { encoding: 'utf8' },
  );
  rmSync(scratch, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`${mode}: ${r.stderr}`);
  const field = (name) => Number(new RegExp(`${name}: ([\\d.]+)`).exec(r.stderr)[1]);
  const result = JSON.parse(r.stdout.trim().split('\n').pop());
  return {
    seconds: result.seconds,
    readMB: result.rchar / 2 ** 20,
    cpu: field('User time \\(seconds\\)') + field('System time \\(seconds\\)'),
    rssMB: field('Maximum resident set size \\(kbytes\\)') / 1024,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4], Number(process.argv[5]), process.argv[6]);
} else {
  const run = makeRun();
  spawnSync('sync');
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(`eval-cmd batches: ${CKPTS} checkpoints x ${MB} MiB f32, 6 candidates; ${cpus().length} cores`);
  console.log(`load average at start: ${load()}`);
  for (const [cache, jobs] of MODES.flatMap((m) => JOBS.map((j) => [m, j]))) {
    const got = { batched: [], separate: [] };
    for (let p = 0; p < PAIRS; p++) {
      const order = p % 2 === 0 ? ['separate', 'batched'] : ['batched', 'separate'];
      for (const mode of order) got[mode].push(measure(mode, run, jobs, cache));
    }
    const row = (mode) => ({
      seconds: median(got[mode].map((m) => m.seconds)),
      cpu: median(got[mode].map((m) => m.cpu)),
      rssMB: Math.max(...got[mode].map((m) => m.rssMB)),
      readMB: median(got[mode].map((m) => m.readMB)),
    });
    const b = row('batched');
    const s = row('separate');
    const figures = (m) =>
      `${m.seconds.toFixed(2)} s (CPU ${m.cpu.toFixed(2)} s, peak RSS ${m.rssMB.toFixed(0)} MB, ` +
      `read ${m.readMB.toFixed(0)} MiB)`;
    console.log(
      `${cache}, --jobs ${jobs}: one merge per candidate ${figures(s)}; batches of ${jobs} ${figures(b)}; ` +
        `time ratio ${(s.seconds / b.seconds).toFixed(2)}x, CPU ratio ${(s.cpu / b.cpu).toFixed(2)}x ` +
        `(medians of ${PAIRS})`,
    );
  }
  console.log(`load average at end: ${load()}`);
}
