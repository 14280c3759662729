/**
 * `avg-ckpt curve`: the paper's analysis on the user's own run. At each checkpoint, the raw model
 * and the LAWA / EMA averages ending there; when each reaches the target, and how many steps
 * that saves.
 */
import type { CommandModule } from 'yargs';
import { AvgCkptError } from '../errors.js';
import { formatCurveSummary, writeCurveOutputs } from '../report/curve-report.js';
import { startProgress } from '../report/progress.js';
import { formatCommand } from '../report/recipe-command.js';
import { writeReportFile } from '../report/write.js';
import { parseSize } from './merge.js';
import { globalOptions } from './shared-options.js';
import { inputPairs, numberList } from './sweep-window.js';

/** The options that change the report, as a command line that makes it again. */
function commandLine(a: Record<string, unknown> & { run: string[] }): string[] {
  const flags: [string, unknown][] = [
    ['onnx', a.onnx], ['data', a.data], ['input', a.input], ['labels', a.labels], ['batch-size', a.batchSize === 256 ? undefined : a.batchSize],
    ['metric', a.metric], ['maximize', a.maximize], ['minimize', a.minimize], ['window', a.window], ['ema', a.ema], ['every', a.every],
    ['from-step', a.fromStep], ['to-step', a.toStep], ['target', a.target], ['map', a.map], ['allow-unmapped', a.allowUnmapped],
    ['engine', a.engine === 'auto' ? undefined : a.engine], ['device', a.device === 'auto' ? undefined : a.device],
  ];
  const words = ['avg-ckpt', 'curve', ...a.run];
  for (const [f, v] of flags) {
    if (v === true) words.push(`--${f}`);
    else if (Array.isArray(v)) for (const x of v) words.push(`--${f}`, String(x));
    else if (v !== undefined && v !== false) words.push(`--${f}`, String(v));
  }
  return words;
}

export const curveCommand: CommandModule = {
  command: 'curve <run..>',
  describe: 'Score the raw model and the LAWA/EMA averages ending at each checkpoint; how many steps averaging saves',
  builder: (y) =>
    globalOptions(y)
      .positional('run', { type: 'string', array: true, describe: 'A run folder, a glob, or checkpoint files/folders' })
      .option('onnx', { type: 'string', demandOption: true, describe: 'ONNX export of the same architecture (any checkpoint)' })
      .option('data', { type: 'string', describe: 'Folder of .npy/.npz/.safetensors files named after the graph inputs (and labels)' })
      .option('input', { type: 'string', array: true, describe: 'NAME=FILE: feed graph input NAME from FILE (repeatable)' })
      .option('labels', { type: 'string', describe: 'Labels file (default: a tensor named "labels" in the data)' })
      .option('batch-size', { type: 'number', default: 256, describe: 'Rows per run' })
      .option('metric', { type: 'string', describe: 'loss, accuracy, perplexity, mse or output:NAME (default: loss with class labels)' })
      .option('maximize', { type: 'boolean', describe: 'Higher is better for --metric' })
      .option('minimize', { type: 'boolean', describe: 'Lower is better for --metric' })
      .option('window', { type: 'string', describe: 'LAWA windows k, e.g. 5 or 5,10: the k checkpoints ending at each step' })
      .option('ema', { type: 'string', describe: 'EMA decays per saved checkpoint, e.g. 0.9: from the first checkpoint to each step' })
      .option('every', { type: 'number', describe: 'Evaluate at every N-th checkpoint only, counted back from the newest (windows still count every checkpoint)' })
      .option('from-step', { type: 'number', describe: 'First step of the run to use (inclusive)' })
      .option('to-step', { type: 'number', describe: 'Last step of the run to use (inclusive)' })
      .option('target', { type: 'number', describe: 'Metric value to reach (default: the best value of the raw model)' })
      .option('report', { type: 'string', describe: 'Write the JSON report (every point of every method, time to target) to this file' })
      .option('plot', { type: 'string', describe: 'Write an SVG chart: metric vs step, one line per method, the target marked' })
      .option('html', { type: 'string', describe: 'Write one self-contained HTML page: time to target, chart, table, command' })
      .option('map', { type: 'string', array: true, describe: "'REGEX=>REPLACEMENT' rewriting initializer names into checkpoint names (repeatable)" })
      .option('allow-unmapped', { type: 'boolean', default: false, describe: 'Score float initializers no checkpoint tensor matches as exported' })
      .option('engine', { choices: ['auto', 'mixture', 'materialize'], default: 'auto', describe: 'mixture: one session, every checkpoint resident (cheap per point); materialize: a session per point' })
      .option('memory-budget', { type: 'string', describe: 'Memory the mixture may use (e.g. 8GB); default half the free RAM or the GPU memory' })
      .option('device', { choices: ['auto', 'cpu', 'webgpu', 'cuda'], default: 'auto', describe: 'Execution provider; auto tries cuda, webgpu, then cpu' })
      .conflicts('maximize', 'minimize')
      .example('$0 curve runs/exp1 --onnx model.onnx --input input=val_x.npy --labels val_y.npy --window 5,10 --ema 0.9 --plot curve.svg', 'Raw vs LAWA(5), LAWA(10), EMA(0.9) along the run')
      .example('$0 curve runs/exp1 --onnx model.onnx --data val/ --window 20 --every 5 --target 3.28 --html curve.html', 'Every 5th checkpoint; steps to a loss of 3.28'),
  handler: async (argv) => {
    const a = argv as unknown as Record<string, unknown> & {
      run: string[]; onnx: string; data?: string; input?: string[]; labels?: string; batchSize: number; metric?: string; maximize?: boolean; minimize?: boolean;
      window?: string; ema?: string; every?: number; fromStep?: number; toStep?: number; target?: number; report?: string; plot?: string; html?: string;
      map?: string[]; allowUnmapped: boolean; engine: 'auto' | 'mixture' | 'materialize'; memoryBudget?: string; device: 'auto' | 'cpu' | 'webgpu' | 'cuda';
      json: boolean; quiet: boolean;
    };
    if (!(Number.isSafeInteger(a.batchSize) && a.batchSize >= 1)) throw new AvgCkptError('usage', `--batch-size must be a whole number >= 1, got ${a.batchSize}`);
    if (a.data === undefined && a.input === undefined) throw new AvgCkptError('usage', 'curve needs validation data: --data DIR or --input NAME=FILE');
    let memoryBudget: number | undefined;
    if (a.memoryBudget !== undefined) {
      try {
        memoryBudget = parseSize(a.memoryBudget);
      } catch {
        throw new AvgCkptError('usage', `--memory-budget: "${a.memoryBudget}" is not a size (e.g. 8GB, 512MiB)`);
      }
    }
    const human = !a.quiet && !a.json;
    let bar: ReturnType<typeof startProgress> | undefined;
    // onnxruntime's native libraries take a second to load: only the commands that score pay for them
    const { curve } = await import('../analysis/curve.js');
    const report = await curve({
      inputs: a.run,
      selection: { fromStep: a.fromStep, toStep: a.toStep },
      onnx: a.onnx,
      data: { dataDir: a.data, inputs: inputPairs(a.input), labels: a.labels, batchSize: a.batchSize },
      metric: a.metric,
      direction: a.maximize ? 'max' : a.minimize ? 'min' : undefined,
      windows: numberList('window', a.window),
      ema: numberList('ema', a.ema),
      every: a.every,
      target: a.target,
      maps: a.map,
      allowUnmapped: a.allowUnmapped,
      engine: a.engine,
      memoryBudget,
      device: a.device,
      onNote: (line) => {
        if (!a.quiet) process.stderr.write(`avg-ckpt: ${line}\n`);
      },
      onProgress: (done, total, what) => {
        bar ??= startProgress(total, 'items', human);
        bar.update(done, what);
      },
    });
    bar?.stop();
    const json = `${JSON.stringify(report, null, 2)}\n`;
    if (a.report !== undefined) await writeReportFile(a.report, json);
    const command = formatCommand(commandLine(a));
    const written = await writeCurveOutputs(report, { plot: a.plot, html: a.html, command, run: a.run.join(' ') });
    process.stdout.write(a.json ? json : `${formatCurveSummary(report)}\n`);
    if (human) for (const w of written) process.stderr.write(`avg-ckpt: wrote ${w}\n`);
  },
};
