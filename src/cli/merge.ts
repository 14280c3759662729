/** `avg-ckpt merge`: average a window of a run into a checkpoint that loads anywhere. */
import type { Argv } from 'yargs';
import { merge, resolveMerge, type MergeRunOptions } from '../commands/merge.js';
import type { MergeRunResult, ResolvedMerge } from '../commands/merge.js';
import { mergeRecipes, recipesFromFile, resolveRecipes, type Recipe } from '../commands/merge-many.js';
import type { MethodSpec } from '../recipes/from-spec.js';
import type { SelectionOptions } from '../series/select.js';
import { parsePartSpec } from '../engine/parts.js';
import { AvgCkptError } from '../errors.js';
import { OUTPUT_DTYPES } from '../io/dtype.js';
import { formatDryRun, formatMergeDone } from '../report/merge-summary.js';
import { defineCommand, type ArgsOf } from './command.js';
import { globalOptions, openFrom, runPositional, selectionFrom, selectionOptions } from './common-options.js';
import { methodOptions, methodSpecFrom } from './method-options.js';
import { startProgress, type Progress } from './terminal.js';
import { numberList, outputDtype, parseSize, positiveInteger } from './values.js';

const builder = (y: Argv) =>
  runPositional(methodOptions(selectionOptions(globalOptions(y))))
    .option('output', {
      alias: 'o',
      type: 'string',
      describe: 'out.safetensors or out.pt (one file), or out/ (a folder like the input)',
    })
    .option('dtype', {
      choices: Object.keys(OUTPUT_DTYPES),
      describe: 'Output dtype for float tensors (default: the input dtype)',
    })
    .option('shard-size', { type: 'string', describe: 'Folder output: split into shards of this size (e.g. 5GB)' })
    .option('force', { type: 'boolean', default: false, describe: 'Replace an existing output' })
    .option('allow-nonfinite', {
      type: 'boolean',
      default: false,
      describe: 'Average NaN/Inf inputs instead of refusing them',
    })
    .option('threads', {
      type: 'number',
      describe: 'Threads for the arithmetic (default: the cores; small merges use fewer)',
    })
    .option('last', {
      type: 'string',
      describe: 'Keep the K newest checkpoints (after --every); several (4,8,16): one recipe per window, in one pass',
    })
    .option('ema', { type: 'string', describe: 'Also write EMA averages with these decays (0.9,0.95), one pass' })
    .option('recipes', {
      type: 'string',
      describe: 'A JSON file listing the recipes to write in one pass ([{"method": "lawa", "k": 8}, ...])',
    })
    .option('dry-run', {
      type: 'boolean',
      default: false,
      describe: 'Print the steps and weights without reading tensors',
    })
    .option('part', {
      type: 'string',
      describe:
        'Compute only part I of N of a folder output (I/N; auto/N: I from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID)',
    })
    .option('finalize', {
      type: 'boolean',
      default: false,
      describe: 'After every --part I/N: check the parts, write the index, config files and _SUCCESS last',
    })
    .example(
      '$0 merge runs/exp1 --method lawa --last 8 -o lawa8.safetensors',
      'LAWA: uniform over the 8 newest checkpoints',
    )
    .example(
      '$0 merge runs/exp1 --method ema --decay 0.9 --every 2 -o ema/',
      'EMA over every 2nd checkpoint, written as a folder like the input',
    )
    .example(
      '$0 merge runs/exp1 --method ema --decay-per-step 0.999 -o ema.safetensors',
      'EMA per optimizer step (uses the real step gaps)',
    )
    .example(
      "$0 merge 'runs/exp1/checkpoint-*' --from-step 5000 --dtype bf16 -o swa/",
      'Uniform (SWA) from step 5000, written in bf16',
    )
    .example(
      '$0 merge runs/exp1 --method phema --sigma-rel 0.05 --dry-run',
      'Post-hoc power EMA: show the weights only',
    )
    .example(
      "$0 merge runs/exp1 --method lawa --last 4,8,16 --ema 0.9,0.95 -o 'out/{name}/'",
      'Five averages in one pass: out/lawa-4/ ... out/ema-0.95/',
    );

export type MergeArgs = ArgsOf<typeof builder>;

/** What `merge` was asked: the run, a dry run or not, and the options of the job. */
export interface MergeRequest {
  readonly inputs: string[];
  readonly dryRun: boolean;
  /** Without an output for a dry run. */
  readonly options: Omit<MergeRunOptions, 'output' | 'onProgress'> & {
    readonly output?: string;
    /** Several recipes (a list of --last windows, --ema), written in one pass; `method` and `select` then unused. */
    readonly recipes?: readonly Recipe[];
    /** --recipes FILE: the recipes, read by the command. */
    readonly recipesFile?: string;
  };
}

/** The recipes a list of `--last` windows and `--ema` decays ask for (undefined for one plain recipe). */
function recipesOf(
  a: MergeArgs,
  method: MethodSpec,
  select: SelectionOptions,
  lasts: number[] | undefined,
): Recipe[] | undefined {
  const emas = numberList('ema', a.ema);
  const several = lasts !== undefined && lasts.length > 1;
  if (a.recipes !== undefined) {
    if (several || emas !== undefined) {
      throw new AvgCkptError('usage', '--recipes FILE lists every recipe: give --ema and --last windows in the file');
    }
    return undefined;
  }
  if (!several && emas === undefined) return undefined;
  const windows = several ? lasts : [select.last];
  // the EMAs average the widest window the command line selects
  const emaSelect = { ...select, last: several ? Math.max(...lasts) : select.last };
  return [
    ...windows.map((last) => ({ method, select: { ...select, last } })),
    ...(emas ?? []).map((decay) => ({ method: { method: 'ema', decay }, select: emaSelect })),
  ];
}

/** The parsed arguments as the command's options (the argv -> options table test checks this). */
export function mergeRequest(a: MergeArgs): MergeRequest {
  if (!a.dryRun && a.output === undefined)
    throw new AvgCkptError('usage', 'merge needs -o OUTPUT (a .safetensors file or a folder), or --dry-run');
  if (a.part !== undefined && a.finalize)
    throw new AvgCkptError('usage', '--finalize replaces --part on the same command line: pass one of them');
  const lasts = numberList('last', a.last);
  const select = selectionFrom({ ...a, last: lasts?.length === 1 ? lasts[0] : undefined });
  const method = methodSpecFrom({ ...a, last: select.last });
  const recipes = recipesOf(a, method, select, lasts);
  if ((recipes !== undefined || a.recipes !== undefined) && (a.part !== undefined || a.finalize)) {
    throw new AvgCkptError('usage', '--part and --finalize write one recipe: run them once per recipe');
  }
  return {
    inputs: a.run,
    dryRun: a.dryRun,
    options: {
      select,
      ...openFrom(a),
      method,
      recipes,
      recipesFile: a.recipes,
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
    if (options.recipes !== undefined || options.recipesFile !== undefined) {
      await mergeSeveral(a, inputs, dryRun, options, note);
      return;
    }
    if (dryRun || options.output === undefined) {
      const resolved = await resolveMerge(inputs, options.select, options.method, options.open);
      resolved.series.notes.forEach(note);
      process.stdout.write(a.json ? `${JSON.stringify(dryRunJson(resolved), null, 2)}\n` : `${dryRunText(resolved)}\n`);
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
    if (a.json) process.stdout.write(`${JSON.stringify(doneJson(result), null, 2)}\n`);
    else if (!a.quiet) process.stderr.write(`avg-ckpt: ${doneText(result)}\n`);
  },
});

function dryRunJson({ vector, checkpoints, selected }: ResolvedMerge) {
  return { method: vector.method, name: vector.name, params: vector.params, selected: selected.length, checkpoints };
}

function dryRunText({ vector, checkpoints, selected }: ResolvedMerge): string {
  return formatDryRun(vector, checkpoints, selected.length);
}

function doneJson(r: MergeRunResult) {
  const { vector, plan } = r;
  return {
    output: r.output,
    files: r.files,
    method: vector.method,
    name: vector.name,
    params: vector.params,
    checkpoints: r.checkpoints,
    bytes_read: plan.bytesToRead,
    bytes_written: plan.bytesToWrite,
    seconds: r.seconds,
    threads: r.threads,
  };
}

function doneText(r: MergeRunResult): string {
  const { vector, plan, output, seconds } = r;
  const files = r.files.length;
  return formatMergeDone({
    vector,
    contributing: plan.contributing,
    output,
    bytesWritten: plan.bytesToWrite,
    files,
    seconds,
  });
}

/** Several recipes: one pass, one output each (`{name}` in -o); JSON: a list, one entry per output. */
async function mergeSeveral(
  a: MergeArgs,
  inputs: string[],
  dryRun: boolean,
  options: MergeRequest['options'],
  note: (line: string) => void,
): Promise<void> {
  const recipes = options.recipes ?? (await recipesFromFile(options.recipesFile as string, options.select));
  if (dryRun || options.output === undefined) {
    const { series, resolved } = await resolveRecipes(inputs, recipes, undefined, options.open);
    series.notes.forEach(note);
    const text = a.json ? JSON.stringify(resolved.map(dryRunJson), null, 2) : resolved.map(dryRunText).join('\n');
    process.stdout.write(`${text}\n`);
    return;
  }
  let bar: Progress | undefined;
  const { method: _method, select: _select, recipes: _recipes, recipesFile: _file, ...rest } = options;
  const results = await mergeRecipes(inputs, {
    ...rest,
    recipes,
    output: options.output,
    onNote: note,
    onProgress: (p, bytesToRead) => {
      bar ??= startProgress(bytesToRead, 'bytes', !a.quiet && !a.json);
      bar.update(p.bytesRead, `${p.tensorsDone} tensors`);
    },
  });
  bar?.stop();
  if (a.json) process.stdout.write(`${JSON.stringify(results.map(doneJson), null, 2)}\n`);
  else if (!a.quiet) for (const r of results) process.stderr.write(`avg-ckpt: ${doneText(r)}\n`);
}
