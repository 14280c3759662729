/**
 * What every scoring command (sweep-window, curve) takes: the graph, the validation data, the
 * metric, the binding rules, the engine and the device, or instead an evaluation command and its
 * options; and how they become scoring options.
 */
import type { Argv } from 'yargs';
import { AvgCkptError } from '../errors.js';
import type { ScoringChoice } from '../commands/scoring.js';
import { startProgress, type Progress } from './terminal.js';
import type { ArgsOf } from './command.js';
import { inputPairs, parseSize, positiveInteger } from './values.js';

export function evalOptions<T>(y: Argv<T>) {
  return y
    .option('onnx', {
      type: 'string',
      describe: 'ONNX export of the same architecture (any checkpoint), with or without external data',
    })
    .option('eval-cmd', {
      type: 'string',
      describe:
        "Instead of --onnx: your evaluation command, e.g. 'python eval.py --model {path}' ({path}, {name}, {step} substituted); it prints a JSON object of metrics (or a number) as its last stdout line",
    })
    .option('shell', {
      type: 'boolean',
      default: false,
      describe: 'With --eval-cmd: run it with /bin/sh -c (pipes, variables); values are substituted shell-quoted',
    })
    .option('scratch', {
      type: 'string',
      describe:
        'With --eval-cmd: where candidates are written (default: the OS temporary folder); free space is checked first',
    })
    .option('jobs', {
      type: 'number',
      default: 1,
      describe:
        'With --eval-cmd: candidates evaluated at once; each holds one model on disk, plus the memory your command uses',
    })
    .option('eval-timeout', {
      type: 'number',
      describe: 'With --eval-cmd: seconds one evaluation may take; a slower one fails (the others are kept)',
    })
    .option('keep', {
      type: 'boolean',
      default: false,
      describe: 'With --eval-cmd: keep the candidates in the scratch folder',
    })
    .option('data', {
      type: 'string',
      describe: 'Folder of .npy/.npz/.safetensors files named after the graph inputs (and labels)',
    })
    .option('input', {
      type: 'string',
      array: true,
      describe: 'NAME=FILE: feed graph input NAME from FILE (repeatable)',
    })
    .option('labels', { type: 'string', describe: 'Labels file (default: a tensor named "labels" in the data)' })
    .option('batch-size', { type: 'number', default: 256, describe: 'Rows per run' })
    .option('threads', {
      type: 'number',
      describe:
        "Threads for forming the averages and for onnxruntime's operators, or for writing --eval-cmd's candidates (default: the cores)",
    })
    .option('metric', {
      type: 'string',
      describe:
        "Ranking metric: loss, accuracy, perplexity, mse or output:NAME (default: loss with class labels); with --eval-cmd a key of the command's JSON (default loss)",
    })
    .option('maximize', { type: 'boolean', describe: 'Higher is better for --metric' })
    .option('minimize', { type: 'boolean', describe: 'Lower is better for --metric' })
    .option('map', {
      type: 'string',
      array: true,
      describe: "'REGEX=>REPLACEMENT' rewriting initializer names into checkpoint names (repeatable)",
    })
    .option('allow-unmapped', {
      type: 'boolean',
      default: false,
      describe: 'Score float initializers no checkpoint tensor matches as exported',
    })
    .option('engine', {
      choices: ['auto', 'mixture', 'materialize', 'fed'] as const,
      default: 'auto' as const,
      describe:
        'mixture: one session, the checkpoints resident (cheap per average); fed: one session, each average fed as inputs (one model in memory); materialize: a session per average',
    })
    .option('memory-budget', {
      type: 'string',
      describe:
        'Memory the mixture may use (e.g. 8GB); default half the free RAM, or of the free GPU memory (80% with CUDA)',
    })
    .option('device', {
      choices: ['auto', 'cpu', 'webgpu', 'cuda'] as const,
      default: 'auto' as const,
      describe: 'Execution provider; auto tries cuda, webgpu, then cpu',
    })
    .conflicts('maximize', 'minimize');
}

/** What every scoring command's handler receives of these options (and the global ones). */
export type EvalArgs = ArgsOf<(y: Argv) => ReturnType<typeof evalOptions<object>>>;

/** Checks the arguments and turns them into scoring options: onnxruntime's, or an evaluation command's. */
export function scoringOptions(a: EvalArgs, command: string): ScoringChoice {
  if (!(Number.isSafeInteger(a.batchSize) && a.batchSize >= 1))
    throw new AvgCkptError('usage', `--batch-size must be a whole number >= 1, got ${a.batchSize}`);
  const direction = a.maximize ? 'max' : a.minimize ? 'min' : undefined;
  const threads = positiveInteger('threads', a.threads);
  const commandOnly = [
    a.shell && '--shell',
    a.scratch !== undefined && '--scratch',
    a.jobs !== 1 && '--jobs',
    a.evalTimeout !== undefined && '--eval-timeout',
    a.keep && '--keep',
  ].filter((x) => x !== false);
  if (a.evalCmd !== undefined) {
    if (a.onnx !== undefined) throw new AvgCkptError('usage', `${command}: give --onnx or --eval-cmd, not both`);
    const onnxOnly = [
      a.data !== undefined && '--data',
      a.input !== undefined && '--input',
      a.labels !== undefined && '--labels',
      a.map !== undefined && '--map',
      a.allowUnmapped && '--allow-unmapped',
      a.engine !== 'auto' && '--engine',
      a.memoryBudget !== undefined && '--memory-budget',
      a.device !== 'auto' && '--device',
      a.batchSize !== 256 && '--batch-size',
    ].filter((x) => x !== false);
    if (onnxOnly.length > 0)
      throw new AvgCkptError(
        'usage',
        `${onnxOnly.join(', ')}: only with --onnx; with --eval-cmd your command reads its own data`,
      );
    return {
      metric: a.metric,
      direction,
      threads,
      evalCommand: {
        command: a.evalCmd,
        shell: a.shell,
        scratch: a.scratch,
        jobs: a.jobs,
        timeoutSeconds: a.evalTimeout,
        keep: a.keep,
      },
    };
  }
  if (a.onnx === undefined)
    throw new AvgCkptError(
      'usage',
      `${command} needs a way to score: --onnx MODEL with validation data, or --eval-cmd 'COMMAND {path}'`,
    );
  if (commandOnly.length > 0) throw new AvgCkptError('usage', `${commandOnly.join(', ')}: only with --eval-cmd`);
  if (a.data === undefined && a.input === undefined)
    throw new AvgCkptError('usage', `${command} needs validation data: --data DIR or --input NAME=FILE`);
  const memoryBudget = a.memoryBudget === undefined ? undefined : parseSize('memory-budget', a.memoryBudget);
  return {
    onnx: a.onnx,
    data: { dataDir: a.data, inputs: inputPairs(a.input), labels: a.labels, batchSize: a.batchSize },
    metric: a.metric,
    direction,
    maps: a.map,
    allowUnmapped: a.allowUnmapped,
    engine: a.engine,
    memoryBudget,
    device: a.device,
    threads,
  };
}

/** Notes on stderr (unless --quiet) and a progress bar over the averages scored (on a TTY). */
export function scoringFeedback(a: { quiet: boolean; json: boolean }): {
  onNote: (line: string) => void;
  onProgress: (done: number, total: number, what: string) => void;
  stop: () => void;
} {
  let bar: Progress | undefined;
  return {
    onNote: (line) => {
      if (!a.quiet) process.stderr.write(`avg-ckpt: ${line}\n`);
    },
    onProgress: (done, total, what) => {
      bar ??= startProgress(total, 'items', !a.quiet && !a.json);
      bar.update(done, what);
    },
    stop: () => bar?.stop(),
  };
}
