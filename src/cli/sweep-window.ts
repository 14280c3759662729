/** `avg-ckpt sweep-window`: score candidate averages of a run (onnxruntime or your own command) and keep the best. */
import { parsePartSpec } from '../engine/parts.js';
import { formatSweepTable } from '../report/sweep-table.js';
import type { Argv } from 'yargs';
import type { SweepOptions } from '../commands/sweep.js';
import { defineCommand, type ArgsOf } from './command.js';
import { globalOptions, openFrom, runPositional, selectionFrom, selectionOptions } from './common-options.js';
import { evalOptions, scoringOptions, scoringFeedback } from './eval-options.js';
import { OUTPUT_DTYPES } from '../io/dtype.js';
import { familyOptions, familyValues, SWEEP_FLAGS } from './method-options.js';
import { outputDtype } from './values.js';

const builder = (y: Argv) =>
  familyOptions(runPositional(evalOptions(selectionOptions(globalOptions(y)))), SWEEP_FLAGS)
    .option('greedy', {
      type: 'number',
      describe:
        'Also a greedy soup over the K newest checkpoints: a checkpoint joins only if the metric improves (optimistic: chosen on the same data)',
    })
    .option('holdout', {
      type: 'number',
      describe:
        'Hold out this share of the validation rows (e.g. 0.5): choose the winner on the rest, report every number on these',
    })
    .option('report', { type: 'string', describe: 'Write the JSON report to this file' })
    .option('candidates-part', {
      type: 'string',
      describe: 'Score only part I of N of the candidates (I/N or auto/N); then avg-ckpt report merge',
    })
    .option('plot', { type: 'string', describe: 'Write an SVG chart: metric vs window size and vs EMA decay' })
    .option('html', {
      type: 'string',
      describe: "Write one self-contained HTML page: table, chart, the winner's recipe and command",
    })
    .option('write-best', {
      type: 'string',
      describe: 'Write the winner here, exactly as merge would (file or folder)',
    })
    .option('dtype', {
      choices: Object.keys(OUTPUT_DTYPES),
      describe: 'With --write-best (and the candidates --eval-cmd evaluates): output dtype (default: the input dtype)',
    })
    .option('emit-onnx', { type: 'string', describe: "Write the graph with the winner's weights baked in" })
    .option('force', { type: 'boolean', default: false, describe: 'Replace existing outputs' })
    .example('$0 sweep-window runs/exp1 --onnx model.onnx --data val/', 'Default grid, ranked by validation loss')
    .example(
      '$0 sweep-window runs/exp1 --onnx model.onnx --input input=val_x.npy --labels val_y.npy --windows 2,4,8,16 --ema 0.9 --write-best best/',
      'Pick a window and write the winner',
    )
    .example(
      '$0 sweep-window runs/exp1 --onnx model.onnx --data val/ --phema 0.05,0.1 --greedy 20',
      'Power EMA widths and a greedy soup over the 20 newest',
    )
    .example(
      "$0 sweep-window runs/exp1 --eval-cmd 'python eval.py --model {path}' --jobs 2 --eval-timeout 600",
      'Score each candidate with your own script (it prints {"loss": ...} last)',
    );

export type SweepWindowArgs = ArgsOf<typeof builder>;

/** The parsed arguments as the command's options (the argv -> options table test checks this). */
export function sweepRequest(a: SweepWindowArgs): Omit<SweepOptions, 'onNote' | 'onProgress'> {
  return {
    ...scoringOptions(a, 'sweep-window'),
    inputs: a.run,
    ...openFrom(a),
    selection: selectionFrom(a),
    grid: familyValues(a, SWEEP_FLAGS),
    ...(a.candidatesPart === undefined
      ? {}
      : { candidatesPart: parsePartSpec(a.candidatesPart, process.env, '--candidates-part') }),
    greedy: a.greedy,
    holdout: a.holdout,
    writeBest:
      a.writeBest === undefined ? undefined : { output: a.writeBest, force: a.force, dtype: outputDtype(a.dtype) },
    emitOnnx: a.emitOnnx === undefined ? undefined : { output: a.emitOnnx, force: a.force },
    outputs: { report: a.report, plot: a.plot, html: a.html },
  };
}

export const sweepWindowCommand = defineCommand({
  command: 'sweep-window <run..>',
  describe:
    'Score candidate averages (LAWA windows, EMA decays, uniform) with onnxruntime or your own evaluation command, and keep the best',
  builder,
  handler: async (a) => {
    const request = sweepRequest(a);
    const feedback = scoringFeedback(a);
    // the scoring libraries (onnxruntime's native code above all) load only for the commands that score
    const { sweepWindow } = await import('../commands/sweep.js');
    const report = await sweepWindow({
      ...request,
      onNote: feedback.onNote,
      onProgress: feedback.onProgress,
    });
    feedback.stop();
    process.stdout.write(a.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatSweepTable(report)}\n`);
    if (!a.quiet && !a.json) for (const w of report.written ?? []) process.stderr.write(`avg-ckpt: wrote ${w}\n`);
  },
});
