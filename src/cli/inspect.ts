/** `avg-ckpt inspect`: show the series that every other command would see, and check it. */
import type { CommandModule } from 'yargs';
import { checkCompatible } from '../series/compatible.js';
import { discoverSeries } from '../series/discover.js';
import { selectCheckpoints } from '../series/select.js';
import { summarizeSeries } from '../series/summary.js';
import { formatBytes } from '../report/progress.js';
import { globalOptions, selectionFrom, selectionOptions } from './shared-options.js';

export const inspectCommand: CommandModule = {
  command: 'inspect <run..>',
  describe: 'List the checkpoint series found (steps, files, dtypes) and check the checkpoints agree',
  builder: (y) =>
    selectionOptions(globalOptions(y))
      .positional('run', { type: 'string', array: true, describe: 'A run folder, a glob, or checkpoint files/folders' })
      .option('onnx', { type: 'string', describe: 'Also show how the graph\'s initializers bind to checkpoint tensors' })
      .option('map', { type: 'string', array: true, describe: "'REGEX=>REPLACEMENT' rewriting initializer names into checkpoint names (as sweep-window)" })
      .example('$0 inspect runs/exp1', 'Show the series in a Trainer output folder')
      .example('$0 inspect runs/exp1 --onnx model.onnx', 'Show which checkpoint tensor feeds each ONNX initializer')
      .example("$0 inspect 'runs/exp1/*.safetensors' --last 5 --json", 'The 5 newest, as JSON'),
  handler: async (argv) => {
    const a = argv as unknown as { run: string[]; json: boolean; onnx?: string; map?: string[]; fromStep?: number; toStep?: number; every?: number; last?: number };
    const series = await discoverSeries(a.run);
    const selected = selectCheckpoints(series.checkpoints, selectionFrom(a));
    checkCompatible(selected);
    const s = summarizeSeries(series, selected);
    // loaded only when asked: the binding code pulls in the ONNX protobuf definitions
    const binding = a.onnx === undefined ? undefined : await (await import('../eval/binding.js')).describeBinding(a.onnx, selected, a.map ?? []);
    if (a.json) {
      process.stdout.write(`${JSON.stringify({ ...s, compatible: true, ...(binding ? { onnx: a.onnx, binding } : {}) }, null, 2)}\n`);
      return;
    }
    const lines = [`${selected.length} checkpoints${series.stepsKnown ? '' : ' (no step numbers found: order as given)'}, ${formatBytes(s.totalBytes)} in all; keys, shapes and dtypes agree`];
    lines.push(`${'step'.padStart(8)}  ${'shards'.padStart(6)}  ${'bytes'.padStart(9)}  ${'tensors'.padStart(7)}  dtypes  path`);
    for (const c of s.checkpoints) {
      const dt = Object.entries(c.dtypes).map(([d, n]) => `${d}x${n}`).join(',');
      lines.push(`${String(c.step).padStart(8)}  ${String(c.shards).padStart(6)}  ${formatBytes(c.bytes).padStart(9)}  ${String(c.tensors).padStart(7)}  ${dt}  ${c.path}`);
    }
    if (binding !== undefined) {
      const unmapped = binding.filter((r) => r.status === 'unmapped').length;
      lines.push('', `${a.onnx}: ${binding.length} initializers, ${unmapped === 0 ? 'every float initializer is bound' : `${unmapped} unmapped (sweep-window would refuse the graph)`}`);
      const w = Math.max(11, ...binding.map((r) => r.initializer.length));
      lines.push(`${'initializer'.padEnd(w)}  ${'status'.padEnd(8)}  ${'via'.padEnd(5)}  ${'dtype'.padEnd(7)}  ${'shape'.padEnd(14)}  source`);
      for (const r of binding) lines.push(`${r.initializer.padEnd(w)}  ${r.status.padEnd(8)}  ${r.via.padEnd(5)}  ${r.dtype.padEnd(7)}  ${r.shape.padEnd(14)}  ${r.source}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
