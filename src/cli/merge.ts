/** `avg-ckpt merge`: average a window of a run into a checkpoint that loads anywhere. */
import type { Argv } from 'yargs';
import { merge, resolveMerge, type MergeRunOptions } from '../commands/merge.js';
import { parsePartSpec } from '../engine/parts.js';
import { AvgCkptError } from '../errors.js';
import { OUTPUT_DTYPES } from '../io/dtype.js';
import { formatDryRun, formatMergeDone } from '../report/merge-summary.js';
import { defineCommand, type ArgsOf } from './command.js';
import { globalOptions, openFrom, runPositional, selectionFrom, selectionOptions } from './common-options.js';
import { methodOptions, methodSpecFrom } from './method-options.js';
import { startProgress, type Progress } from './terminal.js';
import { outputDtype, parseSize, positiveInteger } from './values.js';

const builder = (y: Argv) =>
  runPositional(methodOptions(selectionOptions(globalOptions(y))))
    .option('output', { alias: 'o', type: 'string', describe: 'out.safetensors or out.pt (one file), or out/ (a folder like the input)' })
    .option('dtype', { choices: Object.keys(OUTPUT_DTYPES), describe: 'Output dtype for float tensors (default: the input dtype)' })
    .option('shard-size', { type: 'string', describe: 'Folder output: split into shards of this size (e.g. 5GB)' })
    .option('force', { type: 'boolean', default: false, describe: 'Replace an existing output' })
    .option('allow-nonfinite', { type: 'boolean', default: false, describe: 'Average NaN/Inf inputs instead of refusing them' })
    .option('threads', { type: 'number', describe: 'Threads for the arithmetic (default: the cores; small merges use fewer)' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'Print the steps and weights without reading tensors' })
    .option('part', { type: 'string', describe: 'Compute only part I of N of a folder output (I/N; auto/N: I from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID)' })
    .option('finalize', { type: 'boolean', default: false, describe: 'After every --part I/N: check the parts, write the index, config files and _SUCCESS last' })
    .example('$0 merge runs/exp1 --method lawa --last 8 -o lawa8.safetensors', 'LAWA: uniform over the 8 newest checkpoints')
    .example('$0 merge runs/exp1 --method ema --decay 0.9 --every 2 -o ema/', 'EMA over every 2nd checkpoint, written as a folder like the input')
    .example('$0 merge runs/exp1 --method ema --decay-per-step 0.999 -o ema.safetensors', 'EMA per optimizer step (uses the real step gaps)')
    .example("$0 merge 'runs/exp1/checkpoint-*' --from-step 5000 --dtype bf16 -o swa/", 'Uniform (SWA) from step 5000, written in bf16')
    .example('$0 merge runs/exp1 --method phema --sigma-rel 0.05 --dry-run', 'Post-hoc power EMA: show the weights only');

export type MergeArgs = ArgsOf<typeof builder>;

/** What `merge` was asked: the run, a dry run or not, and the options of the job. */
export interface MergeRequest {
  readonly inputs: string[];
  readonly dryRun: boolean;
  /** Without an output for a dry run. */
  readonly options: Omit<MergeRunOptions, 'output' | 'onProgress'> & { readonly output?: string };
}

/** The parsed arguments as the command's options (the argv -> options table test checks this). */
export function mergeRequest(a: MergeArgs): MergeRequest {
  if (!a.dryRun && a.output === undefined) throw new AvgCkptError('usage', 'merge needs -o OUTPUT (a .safetensors file or a folder), or --dry-run');
  if (a.part !== undefined && a.finalize) throw new AvgCkptError('usage', '--finalize replaces --part on the same command line: pass one of them');
  return {
    inputs: a.run,
    dryRun: a.dryRun,
    options: {
      select: selectionFrom(a),
      ...openFrom(a),
      method: methodSpecFrom(a),
      output: a.output,
      force: a.force,
      dtype: outputDtype(a.dtype),
      shardSize: a.shardSize === undefined ? undefined : parseSize('shard-size', a.shardSize),
      allowNonfinite: a.allowNonfinite,
      threads: positiveInteger('threads', a.threads),
      ...(a.part === undefined ? {} : { part: parsePartSpec(a.part) }),
      ...(a.finalize ? { finalize: true } : {}),
    },
  };
}

export const mergeCommand = defineCommand({
  command: 'merge <run..>',
  describe: 'Average a window of a run into one checkpoint (bounded memory, float64 accumulation)',
  builder,
  handler: async (a) => {
    const { inputs, dryRun, options } = mergeRequest(a);
    const note = (line: string) => {
      if (!a.quiet) process.stderr.write(`avg-ckpt: ${line}\n`);
    };
    if (dryRun || options.output === undefined) {
      const { vector, checkpoints, selected, series } = await resolveMerge(inputs, options.select, options.method, options.open);
      series.notes.forEach(note);
      const json = { method: vector.method, name: vector.name, params: vector.params, selected: selected.length, checkpoints };
      process.stdout.write(a.json ? `${JSON.stringify(json, null, 2)}\n` : `${formatDryRun(vector, checkpoints, selected.length)}\n`);
      return;
    }
    let bar: Progress | undefined;
    const result = await merge(inputs, {
      ...options,
      output: options.output,
      onNote: note,
      onProgress: (p, plan) => {
        bar ??= startProgress(plan.bytesToRead, 'bytes', !a.quiet && !a.json);
        bar.update(p.bytesRead, `${p.tensorsDone} tensors`);
      },
    });
    bar?.stop();
    const { vector, plan } = result;
    if (a.json) {
      const json = {
        output: result.output, files: result.files, method: vector.method, name: vector.name, params: vector.params, checkpoints: result.checkpoints,
        bytes_read: plan.bytesToRead, bytes_written: plan.bytesToWrite, seconds: result.seconds, threads: result.threads,
      };
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    } else if (!a.quiet) {
      const done = { vector, contributing: plan.contributing, output: result.output, bytesWritten: plan.bytesToWrite, files: result.files.length, seconds: result.seconds };
      process.stderr.write(`avg-ckpt: ${formatMergeDone(done)}\n`);
    }
  },
});
