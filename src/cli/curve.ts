/**
 * `avg-ckpt curve`: the paper's analysis on the user's own run. At each checkpoint, the raw model
 * and the LAWA / EMA averages ending there; when each reaches the target, and how many steps
 * that saves.
 */
import { formatCurveSummary } from '../report/curve-report.js';
import type { Argv } from 'yargs';
import type { CurveOptions } from '../commands/curve.js';
import { defineCommand, type ArgsOf } from './command.js';
import { globalOptions, openFrom, runPositional } from './common-options.js';
import { evalOptions, scoringOptions, scoringFeedback } from './eval-options.js';
import { CURVE_FLAGS, familyOptions, familyValues } from './method-options.js';

const builder = (y: Argv) =>
  familyOptions(runPositional(evalOptions(globalOptions(y))), CURVE_FLAGS)
    .option('every', {
      type: 'number',
      describe:
        'Evaluate at every N-th checkpoint only, counted back from the newest (windows still count every checkpoint)',
    })
    .option('from-step', { type: 'number', describe: 'First step of the run to use (inclusive)' })
    .option('to-step', { type: 'number', describe: 'Last step of the run to use (inclusive)' })
    .option('target', { type: 'number', describe: 'Metric value to reach (default: the best value of the raw model)' })
    .option('report', {
      type: 'string',
      describe: 'Write the JSON report (every point of every method, time to target) to this file',
    })
    .option('plot', {
      type: 'string',
      describe: 'Write an SVG chart: metric vs step, one line per method, the target marked',
    })
    .option('html', {
      type: 'string',
      describe: 'Write one self-contained HTML page: time to target, chart, table, command',
    })
    .example(
      '$0 curve runs/exp1 --onnx model.onnx --input input=val_x.npy --labels val_y.npy --window 5,10 --ema 0.9 --plot curve.svg',
      'Raw vs LAWA(5), LAWA(10), EMA(0.9) along the run',
    )
    .example(
      '$0 curve runs/exp1 --onnx model.onnx --data val/ --window 20 --every 5 --target 3.28 --html curve.html',
      'Every 5th checkpoint; steps to a loss of 3.28',
    )
    .example(
      "$0 curve runs/exp1 --eval-cmd 'python eval.py --model {path}' --window 5 --every 4",
      'The same analysis scored by your own script',
    );

export type CurveArgs = ArgsOf<typeof builder>;

/** The parsed arguments as the command's options (the argv -> options table test checks this). */
export function curveRequest(a: CurveArgs): Omit<CurveOptions, 'onNote' | 'onProgress'> {
  return {
    ...scoringOptions(a, 'curve'),
    inputs: a.run,
    ...openFrom(a),
    selection: { fromStep: a.fromStep, toStep: a.toStep },
    averages: familyValues(a, CURVE_FLAGS),
    every: a.every,
    target: a.target,
    outputs: { report: a.report, plot: a.plot, html: a.html },
  };
}

export const curveCommand = defineCommand({
  command: 'curve <run..>',
  describe: 'Score the raw model and the LAWA/EMA averages ending at each checkpoint; how many steps averaging saves',
  builder,
  handler: async (a) => {
    const request = curveRequest(a);
    const feedback = scoringFeedback(a);
    // the scoring libraries (onnxruntime's native code above all) load only for the commands that score
    const { curve } = await import('../commands/curve.js');
    const report = await curve({
      ...request,
      onNote: feedback.onNote,
      onProgress: feedback.onProgress,
    });
    feedback.stop();
    process.stdout.write(a.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatCurveSummary(report)}\n`);
    if (!a.quiet && !a.json) for (const w of report.written ?? []) process.stderr.write(`avg-ckpt: wrote ${w}\n`);
  },
});
