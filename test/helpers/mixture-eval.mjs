#!/usr/bin/env node
/**
 * Scores LAWA windows over the 8 newest checkpoints of a reference run with the built mixture
 * engine (dist/), its stacks cut into pieces of at most MAX_STACK_BYTES, on DEVICE, in a process
 * of its own: WebGPU finds its driver through the environment at start-up.
 *
 * node mixture-eval.mjs RUN_DIR DEVICE MAX_STACK_BYTES 2,4,8
 * prints {"lawa-2": {"loss": ..., "accuracy": ...}, ...} as its last stdout line.
 */
import { join } from 'node:path';
import { Evaluator } from '../../dist/eval/evaluator.js';
import { lawa } from '../../dist/recipes/lawa.js';
import { discoverSeries } from '../../dist/series/discover.js';

const [dir, device, maxStackBytes, windows] = process.argv.slice(2);
const checkpoints = (await discoverSeries([join(dir, 'run')])).checkpoints.slice(-8);
const ev = await Evaluator.create({
  onnx: join(dir, 'model.onnx'),
  checkpoints,
  data: { dataDir: dir },
  engine: 'mixture',
  device,
  maxStackBytes: Number(maxStackBytes),
});
const out = {};
try {
  for (const k of windows.split(',').map(Number)) {
    const v = lawa(
      checkpoints.map((c) => c.step),
      k,
    );
    const m = await ev.score(v);
    out[v.name] = { loss: m.loss, accuracy: m.accuracy };
  }
} finally {
  await ev.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
