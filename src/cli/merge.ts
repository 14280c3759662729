/** `avg-ckpt merge`: average a window of a run into a checkpoint that loads anywhere. */
import type { CommandModule } from 'yargs';
import { AvgCkptError } from '../errors.js';
import { mergeToOutput } from '../engine/merge.js';
import { resolveMerge } from '../engine/merge-run.js';
import { checkpointInputs } from '../io/output-guard.js';
import type { WritableFloat } from '../io/safetensors/dtype.js';
import type { MethodSpec } from '../recipes/from-spec.js';
import { formatBytes, startProgress } from '../report/progress.js';
import { methodOptions } from './method-options.js';
import { globalOptions, selectionFrom, selectionOptions } from './shared-options.js';

/** `--dtype` values. */
export const OUTPUT_DTYPES: Record<string, WritableFloat> = { f32: 'F32', f16: 'F16', bf16: 'BF16', f64: 'F64' };

/** Parses `5GB`, `500MB`, `2GiB` or a byte count. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(text);
  if (!m) throw new AvgCkptError('usage', `--shard-size: "${text}" is not a size (e.g. 5GB, 500MB, 2GiB)`);
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const pow = { '': 0, k: 1, m: 2, g: 3, t: 4 }[unit.replace('i', '')] ?? 0;
  const bytes = Math.floor(Number(m[1]) * (unit.endsWith('i') ? 1024 : 1000) ** pow);
  if (!(bytes > 0)) throw new AvgCkptError('usage', '--shard-size must be positive');
  return bytes;
}

export const mergeCommand: CommandModule = {
  command: 'merge <run..>',
  describe: 'Average a window of a run into one checkpoint (bounded memory, float64 accumulation)',
  builder: (y) =>
    methodOptions(selectionOptions(globalOptions(y)))
      .positional('run', { type: 'string', array: true, describe: 'A run folder, a glob, or checkpoint files/folders' })
      .option('output', { alias: 'o', type: 'string', describe: 'out.safetensors (one file) or out/ (a folder like the input)' })
      .option('dtype', { choices: Object.keys(OUTPUT_DTYPES), describe: 'Output dtype for float tensors (default: the input dtype)' })
      .option('shard-size', { type: 'string', describe: 'Folder output: split into shards of this size (e.g. 5GB)' })
      .option('force', { type: 'boolean', default: false, describe: 'Replace an existing output' })
      .option('allow-nonfinite', { type: 'boolean', default: false, describe: 'Average NaN/Inf inputs instead of refusing them' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Print the steps and weights without reading tensors' })
      .example('$0 merge runs/exp1 --method lawa --last 8 -o lawa8.safetensors', 'LAWA: uniform over the 8 newest checkpoints')
      .example('$0 merge runs/exp1 --method ema --decay 0.9 --every 2 -o ema/', 'EMA over every 2nd checkpoint, written as a folder like the input')
      .example('$0 merge runs/exp1 --method ema --decay-per-step 0.999 -o ema.safetensors', 'EMA per optimizer step (uses the real step gaps)')
      .example("$0 merge 'runs/exp1/checkpoint-*' --from-step 5000 --dtype bf16 -o swa/", 'Uniform (SWA) from step 5000, written in bf16')
      .example('$0 merge runs/exp1 --method phema --sigma-rel 0.05 --dry-run', 'Post-hoc power EMA: show the weights only'),
  handler: async (argv) => {
    const a = argv as unknown as MethodSpec & {
      run: string[]; output?: string; dtype?: string; shardSize?: string; force: boolean; allowNonfinite: boolean; dryRun: boolean;
      json: boolean; quiet: boolean; fromStep?: number; toStep?: number; every?: number; last?: number;
    };
    if (!a.dryRun && a.output === undefined) throw new AvgCkptError('usage', 'merge needs -o OUTPUT (a .safetensors file or a folder), or --dry-run');
    const { series, selected, vector } = await resolveMerge(a.run, selectionFrom(a), a);
    const rows = selected.map((c, i) => ({ step: c.step, weight: vector.weights[i], path: c.path }));
    if (a.dryRun) {
      if (a.json) process.stdout.write(`${JSON.stringify({ method: vector.method, name: vector.name, params: vector.params, checkpoints: rows }, null, 2)}\n`);
      else {
        process.stdout.write(`${vector.name}: ${rows.filter((r) => r.weight > 0).length} of ${rows.length} checkpoints carry weight\n`);
        for (const r of rows) process.stdout.write(`  step ${String(r.step).padStart(8)}  weight ${r.weight.toFixed(6)}  ${r.path}\n`);
      }
      return;
    }
    const started = Date.now();
    let bar: ReturnType<typeof startProgress> | undefined;
    const result = await mergeToOutput(selected, vector, {
      output: a.output!,
      force: a.force,
      dtype: a.dtype === undefined ? undefined : OUTPUT_DTYPES[a.dtype],
      shardSize: a.shardSize === undefined ? undefined : parseSize(a.shardSize),
      allowNonfinite: a.allowNonfinite,
      inputs: checkpointInputs(series.checkpoints),
      onProgress: (p, plan) => {
        bar ??= startProgress(plan.bytesToRead, 'bytes', !a.quiet && !a.json);
        bar.update(p.bytesRead, `${p.tensorsDone} tensors`);
      },
    });
    bar?.stop();
    const seconds = (Date.now() - started) / 1000;
    const plan = result.plan;
    if (a.json) {
      process.stdout.write(`${JSON.stringify({ output: result.output, files: result.files, method: vector.method, name: vector.name, params: vector.params, checkpoints: rows, bytes_read: plan.bytesToRead, bytes_written: plan.bytesToWrite, seconds }, null, 2)}\n`);
    } else if (!a.quiet) {
      const used = plan.contributing;
      process.stderr.write(`avg-ckpt: ${vector.name} over ${used.length} checkpoints (steps ${used[0].step}..${used[used.length - 1].step}) -> ${result.output} (${formatBytes(plan.bytesToWrite)}, ${result.files.length} file${result.files.length > 1 ? 's' : ''}, ${seconds.toFixed(1)} s)\n`);
    }
  },
};
