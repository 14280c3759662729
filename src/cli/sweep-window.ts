/** `avg-ckpt sweep-window`: score candidate averages of a run with onnxruntime and keep the best. */
import { writeFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { AvgCkptError, ioError } from '../errors.js';
import type { SweepReport } from '../eval/sweep.js';
import type { WritableFloat } from '../io/safetensors/dtype.js';
import { startProgress } from '../report/progress.js';
import { writeSweepOutputs } from '../report/sweep-outputs.js';
import { parseSize } from './merge.js';
import { globalOptions, selectionFrom, selectionOptions } from './shared-options.js';

const DTYPES: Record<string, WritableFloat> = { f32: 'F32', f16: 'F16', bf16: 'BF16', f64: 'F64' };

/** `1,2,4` or repeated flags -> numbers. */
export function numberList(flag: string, v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const items = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const nums = items.map(Number);
  if (nums.some((n) => !Number.isFinite(n))) throw new AvgCkptError('usage', `--${flag} takes numbers separated by commas, got '${items.join(',')}'`);
  return nums;
}

/** `NAME=FILE` pairs. */
export function inputPairs(v: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of v ?? []) {
    const at = item.indexOf('=');
    if (at <= 0) throw new AvgCkptError('usage', `--input takes NAME=FILE, got '${item}'`);
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
}

function fmt(x: number | undefined): string {
  return x === undefined ? '-' : Number.isFinite(x) ? x.toPrecision(6) : String(x);
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

/** The human table: candidate, steps covered, metrics, change of the ranking metric vs the baseline. */
export function formatTable(r: SweepReport): string {
  const metrics = Object.keys(r.candidates[0]?.metrics ?? {});
  const base = r.candidates.find((c) => c.name === r.baseline)!.metrics[r.metric];
  const rows = r.candidates.map((c) => {
    const first = c.steps[0];
    const last = c.steps[c.steps.length - 1];
    const covered = c.steps.length === 1 ? `${first}` : `${first}..${last} (${c.steps.length})`;
    const d = c.metrics[r.metric] - base;
    const change = c.name === r.baseline ? 'baseline' : `${d >= 0 ? '+' : ''}${d.toPrecision(3)}${base !== 0 ? ` (${d >= 0 ? '+' : ''}${((100 * d) / Math.abs(base)).toFixed(1)}%)` : ''}`;
    return [`${c.name === r.best ? '* ' : '  '}${c.name}`, covered, ...metrics.map((m) => fmt(c.metrics[m])), change];
  });
  const head = ['  candidate', 'steps', ...metrics, `change in ${r.metric}`];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const better = r.direction === 'max' ? 'higher' : 'lower';
  const timing = r.setup_ms === undefined || r.ms_per_candidate === undefined ? [] : [`time: setup ${seconds(r.setup_ms)}, ${seconds(r.ms_per_candidate)} per candidate (median of ${r.candidates.length})`];
  return [line(head), ...rows.map(line), '', `best: ${r.best} (${r.metric} ${fmt(r.candidates.find((c) => c.name === r.best)!.metrics[r.metric])}, ${better} is better; device ${r.device}, engine ${r.engine})`, ...timing].join('\n');
}

export const sweepWindowCommand: CommandModule = {
  command: 'sweep-window <run..>',
  describe: 'Score candidate averages (LAWA windows, EMA decays, uniform) with onnxruntime and keep the best',
  builder: (y) =>
    selectionOptions(globalOptions(y))
      .positional('run', { type: 'string', array: true, describe: 'A run folder, a glob, or checkpoint files/folders' })
      .option('onnx', { type: 'string', demandOption: true, describe: 'ONNX export of the same architecture (any checkpoint), with or without external data' })
      .option('data', { type: 'string', describe: 'Folder of .npy/.npz/.safetensors files named after the graph inputs (and labels)' })
      .option('input', { type: 'string', array: true, describe: 'NAME=FILE: feed graph input NAME from FILE (repeatable)' })
      .option('labels', { type: 'string', describe: 'Labels file (default: a tensor named "labels" in the data)' })
      .option('batch-size', { type: 'number', default: 256, describe: 'Rows per run' })
      .option('metric', { type: 'string', describe: 'Ranking metric: loss, accuracy, perplexity, mse or output:NAME (default: loss with class labels)' })
      .option('maximize', { type: 'boolean', describe: 'Higher is better for --metric' })
      .option('minimize', { type: 'boolean', describe: 'Lower is better for --metric' })
      .option('windows', { type: 'string', describe: 'LAWA windows ending at the newest checkpoint, e.g. 1,2,4,8,16,32' })
      .option('ema', { type: 'string', describe: 'EMA decays per saved checkpoint, e.g. 0.5,0.8,0.9' })
      .option('ema-per-step', { type: 'string', describe: 'EMA decays per optimizer step, e.g. 0.999' })
      .option('uniform-from', { type: 'string', describe: 'Uniform averages from these steps to the newest' })
      .option('phema', { type: 'string', describe: 'Post-hoc power EMA widths sigma_rel, e.g. 0.05,0.1 (Karras et al. 2024)' })
      .option('greedy', { type: 'number', describe: 'Also a greedy soup over the K newest checkpoints: a checkpoint joins only if the metric improves (optimistic: chosen on the same data)' })
      .option('map', { type: 'string', array: true, describe: "'REGEX=>REPLACEMENT' rewriting initializer names into checkpoint names (repeatable)" })
      .option('allow-unmapped', { type: 'boolean', default: false, describe: 'Score float initializers no checkpoint tensor matches as exported' })
      .option('engine', { choices: ['auto', 'mixture', 'materialize'], default: 'auto', describe: 'mixture: one session, K checkpoints resident; materialize: a session per candidate' })
      .option('memory-budget', { type: 'string', describe: 'Memory the mixture may use (e.g. 8GB); default half the free RAM, or of the free GPU memory (80% with CUDA)' })
      .option('device', { choices: ['auto', 'cpu', 'webgpu', 'cuda'], default: 'auto', describe: 'Execution provider; auto tries cuda, webgpu, then cpu' })
      .option('report', { type: 'string', describe: 'Write the JSON report to this file' })
      .option('plot', { type: 'string', describe: 'Write an SVG chart: metric vs window size and vs EMA decay' })
      .option('html', { type: 'string', describe: "Write one self-contained HTML page: table, chart, the winner's recipe and command" })
      .option('write-best', { type: 'string', describe: 'Write the winner here, exactly as merge would (file or folder)' })
      .option('dtype', { choices: Object.keys(DTYPES), describe: 'With --write-best: output dtype (default: the input dtype)' })
      .option('emit-onnx', { type: 'string', describe: "Write the graph with the winner's weights baked in" })
      .option('force', { type: 'boolean', default: false, describe: 'Replace existing outputs' })
      .conflicts('maximize', 'minimize')
      .example('$0 sweep-window runs/exp1 --onnx model.onnx --data val/', 'Default grid, ranked by validation loss')
      .example('$0 sweep-window runs/exp1 --onnx model.onnx --input input=val_x.npy --labels val_y.npy --windows 2,4,8,16 --ema 0.9 --write-best best/', 'Pick a window and write the winner')
      .example('$0 sweep-window runs/exp1 --onnx model.onnx --data val/ --phema 0.05,0.1 --greedy 20', 'Power EMA widths and a greedy soup over the 20 newest'),
  handler: async (argv) => {
    const a = argv as unknown as {
      run: string[]; onnx: string; data?: string; input?: string[]; labels?: string; batchSize: number; metric?: string; maximize?: boolean; minimize?: boolean;
      windows?: string; ema?: string; emaPerStep?: string; uniformFrom?: string; phema?: string; greedy?: number; map?: string[]; allowUnmapped: boolean; engine: 'auto' | 'mixture' | 'materialize';
      memoryBudget?: string; device: 'auto' | 'cpu' | 'webgpu' | 'cuda'; report?: string; plot?: string; html?: string; writeBest?: string; dtype?: string; emitOnnx?: string; force: boolean;
      json: boolean; quiet: boolean; fromStep?: number; toStep?: number; every?: number; last?: number;
    };
    if (!(Number.isSafeInteger(a.batchSize) && a.batchSize >= 1)) throw new AvgCkptError('usage', `--batch-size must be a whole number >= 1, got ${a.batchSize}`);
    if (a.data === undefined && a.input === undefined) throw new AvgCkptError('usage', 'sweep-window needs validation data: --data DIR or --input NAME=FILE');
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
    // onnxruntime's native libraries take a second to load: only this command pays for them
    const { sweepWindow } = await import('../eval/sweep.js');
    const report = await sweepWindow({
      inputs: a.run,
      selection: selectionFrom(a),
      onnx: a.onnx,
      data: { dataDir: a.data, inputs: inputPairs(a.input), labels: a.labels, batchSize: a.batchSize },
      metric: a.metric,
      direction: a.maximize ? 'max' : a.minimize ? 'min' : undefined,
      grid: { windows: numberList('windows', a.windows), ema: numberList('ema', a.ema), emaPerStep: numberList('ema-per-step', a.emaPerStep), uniformFrom: numberList('uniform-from', a.uniformFrom), phema: numberList('phema', a.phema) },
      greedy: a.greedy,
      maps: a.map,
      allowUnmapped: a.allowUnmapped,
      engine: a.engine,
      memoryBudget,
      device: a.device,
      writeBest: a.writeBest === undefined ? undefined : { output: a.writeBest, force: a.force, dtype: a.dtype === undefined ? undefined : DTYPES[a.dtype] },
      emitOnnx: a.emitOnnx === undefined ? undefined : { output: a.emitOnnx, force: a.force },
      onNote: (line) => {
        if (!a.quiet) process.stderr.write(`avg-ckpt: ${line}\n`);
      },
      onProgress: (done, total, name) => {
        bar ??= startProgress(total, 'items', human);
        bar.update(done, name);
      },
    });
    bar?.stop();
    const json = `${JSON.stringify(report, null, 2)}\n`;
    if (a.report !== undefined) {
      try {
        await writeFile(a.report, json);
      } catch (e) {
        throw ioError(a.report, e, 'write the report');
      }
    }
    const outputs = await writeSweepOutputs(report, { inputs: a.run, selection: selectionFrom(a), plot: a.plot, html: a.html });
    process.stdout.write(a.json ? json : `${formatTable(report)}\n`);
    if (human) for (const w of [...(report.written ?? []), ...outputs]) process.stderr.write(`avg-ckpt: wrote ${w}\n`);
  },
};
