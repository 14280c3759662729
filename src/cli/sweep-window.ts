/** `avg-ckpt sweep-window`: score candidate averages of a run with onnxruntime and keep the best. */
import type { CommandModule } from 'yargs';
import type { SweepReport } from '../eval/sweep.js';
import { writeSweepOutputs } from '../report/sweep-outputs.js';
import { writeReportFile } from '../report/write.js';
import { evalOptions, evaluatorOptions, reportFiles, numberList, scoringFeedback, type EvalArgs } from './eval-options.js';
import { OUTPUT_DTYPES } from './merge.js';
import { globalOptions, selectionFrom, selectionOptions } from './shared-options.js';

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
    evalOptions(selectionOptions(globalOptions(y)))
      .positional('run', { type: 'string', array: true, describe: 'A run folder, a glob, or checkpoint files/folders' })
      .option('windows', { type: 'string', describe: 'LAWA windows ending at the newest checkpoint, e.g. 1,2,4,8,16,32' })
      .option('ema', { type: 'string', describe: 'EMA decays per saved checkpoint, e.g. 0.5,0.8,0.9' })
      .option('ema-per-step', { type: 'string', describe: 'EMA decays per optimizer step, e.g. 0.999' })
      .option('uniform-from', { type: 'string', describe: 'Uniform averages from these steps to the newest' })
      .option('phema', { type: 'string', describe: 'Post-hoc power EMA widths sigma_rel, e.g. 0.05,0.1 (Karras et al. 2024)' })
      .option('greedy', { type: 'number', describe: 'Also a greedy soup over the K newest checkpoints: a checkpoint joins only if the metric improves (optimistic: chosen on the same data)' })
      .option('report', { type: 'string', describe: 'Write the JSON report to this file' })
      .option('plot', { type: 'string', describe: 'Write an SVG chart: metric vs window size and vs EMA decay' })
      .option('html', { type: 'string', describe: "Write one self-contained HTML page: table, chart, the winner's recipe and command" })
      .option('write-best', { type: 'string', describe: 'Write the winner here, exactly as merge would (file or folder)' })
      .option('dtype', { choices: Object.keys(OUTPUT_DTYPES), describe: 'With --write-best: output dtype (default: the input dtype)' })
      .option('emit-onnx', { type: 'string', describe: "Write the graph with the winner's weights baked in" })
      .option('force', { type: 'boolean', default: false, describe: 'Replace existing outputs' })
      .example('$0 sweep-window runs/exp1 --onnx model.onnx --data val/', 'Default grid, ranked by validation loss')
      .example('$0 sweep-window runs/exp1 --onnx model.onnx --input input=val_x.npy --labels val_y.npy --windows 2,4,8,16 --ema 0.9 --write-best best/', 'Pick a window and write the winner')
      .example('$0 sweep-window runs/exp1 --onnx model.onnx --data val/ --phema 0.05,0.1 --greedy 20', 'Power EMA widths and a greedy soup over the 20 newest'),
  handler: async (argv) => {
    const a = argv as unknown as EvalArgs & {
      run: string[]; windows?: string; ema?: string; emaPerStep?: string; uniformFrom?: string; phema?: string; greedy?: number;
      report?: string; plot?: string; html?: string; writeBest?: string; dtype?: string; emitOnnx?: string; force: boolean;
      fromStep?: number; toStep?: number; every?: number; last?: number;
    };
    const scoring = evaluatorOptions(a, 'sweep-window');
    const feedback = scoringFeedback(a);
    // onnxruntime's native libraries take a second to load: only the commands that score pay for them
    const { sweepWindow } = await import('../eval/sweep.js');
    const report = await sweepWindow({
      ...scoring,
      inputs: a.run,
      selection: selectionFrom(a),
      grid: { windows: numberList('windows', a.windows), ema: numberList('ema', a.ema), emaPerStep: numberList('ema-per-step', a.emaPerStep), uniformFrom: numberList('uniform-from', a.uniformFrom), phema: numberList('phema', a.phema) },
      greedy: a.greedy,
      writeBest: a.writeBest === undefined ? undefined : { output: a.writeBest, force: a.force, dtype: a.dtype === undefined ? undefined : OUTPUT_DTYPES[a.dtype] },
      emitOnnx: a.emitOnnx === undefined ? undefined : { output: a.emitOnnx, force: a.force },
      reportFiles: reportFiles(a),
      onNote: feedback.onNote,
      onProgress: feedback.onProgress,
    });
    feedback.stop();
    const json = `${JSON.stringify(report, null, 2)}\n`;
    if (a.report !== undefined) await writeReportFile(a.report, json);
    const outputs = await writeSweepOutputs(report, { inputs: a.run, selection: selectionFrom(a), plot: a.plot, html: a.html });
    process.stdout.write(a.json ? json : `${formatTable(report)}\n`);
    if (!a.quiet && !a.json) for (const w of [...(report.written ?? []), ...outputs]) process.stderr.write(`avg-ckpt: wrote ${w}\n`);
  },
};
