#!/usr/bin/env node
/**
 * Per-candidate scoring time of one (device, engine) pair, through the library the CLI uses:
 *   node bench/gpu-sweep.js run RUN_DIR DEVICE ENGINE OUT.json
 * scores LAWA windows 1, 2, 4, ... K and EMA 0.5/0.9 over every checkpoint of RUN_DIR (as made by
 * bench/gpu-run.js) and writes setup time, first-candidate time (shader compilation, uploads),
 * the median of the rest, peak RSS and every candidate's metrics. One pair per process, so a
 * failing device or an out-of-memory leaves the others measurable.
 *   node bench/gpu-sweep.js summary DIR
 * prints a Markdown table of DIR/sweep-*.json and the largest metric difference to the CPU run.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resourceUsage } from 'node:process';
import { Evaluator } from '../dist/eval/evaluator.js';
import { ema } from '../dist/recipes/ema.js';
import { lawa } from '../dist/recipes/lawa.js';
import { discoverSeries } from '../dist/series/discover.js';

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function measure(run, device, engine, out) {
  const { checkpoints } = await discoverSeries([join(run, 'run')]);
  const steps = checkpoints.map((c) => c.step);
  const vectors = [];
  for (let k = 1; k <= steps.length; k *= 2) vectors.push(lawa(steps, k));
  vectors.push(ema(steps, 0.5), ema(steps, 0.9));
  // materialize reads every checkpoint per candidate: AVG_GPU_CANDIDATES keeps it within time
  vectors.splice(Number(process.env.AVG_GPU_CANDIDATES ?? vectors.length));
  let t = performance.now();
  const ev = await Evaluator.create({
    onnx: join(run, 'model.onnx'),
    checkpoints,
    data: { dataDir: run },
    device,
    engine,
  });
  const setupMs = performance.now() - t;
  const times = [];
  const candidates = [];
  try {
    for (const v of vectors) {
      t = performance.now();
      candidates.push({ name: v.name, metrics: await ev.score(v) });
      times.push(performance.now() - t);
    }
  } finally {
    await ev.close();
  }
  const r = {
    device: ev.device,
    engine: ev.engineKind,
    engineReason: ev.engineReason,
    checkpoints: steps.length,
    setupMs,
    firstMs: times[0],
    steadyMs: median(times.slice(1)),
    peakRssMiB: resourceUsage().maxRSS / 1024,
    candidates,
  };
  writeFileSync(out, `${JSON.stringify(r, null, 2)}\n`);
  process.stdout.write(
    `${device}/${engine}: setup ${setupMs.toFixed(0)} ms, first candidate ${times[0].toFixed(0)} ms, then ${r.steadyMs.toFixed(1)} ms per candidate\n`,
  );
}

function summary(dir) {
  const rows = readdirSync(dir)
    .filter((f) => /^sweep-.*\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
  const cpu = rows.find((r) => r.device === 'cpu' && r.engine === 'mixture');
  const lines = [
    '| device | engine | checkpoints | setup | first candidate | per candidate (median) | peak RSS | max metric diff vs cpu/mixture |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    let diff = '-';
    if (cpu && r !== cpu) {
      diff = Math.max(
        ...r.candidates.flatMap((c, i) =>
          Object.entries(c.metrics).map(([m, v]) => Math.abs(v - cpu.candidates[i].metrics[m])),
        ),
      ).toExponential(1);
    }
    lines.push(
      `| ${r.device} | ${r.engine} | ${r.checkpoints} | ${(r.setupMs / 1e3).toFixed(1)} s | ${r.firstMs.toFixed(0)} ms | ${r.steadyMs.toFixed(1)} ms | ${(r.peakRssMiB / 1024).toFixed(1)} GiB | ${diff} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'run' && args.length === 4) await measure(...args);
else if (mode === 'summary' && args.length === 1) summary(args[0]);
else throw new Error('usage: gpu-sweep.js run RUN_DIR DEVICE ENGINE OUT.json | summary DIR');
