/** `avg-ckpt inspect`: show the series that every other command would see, and check it. */
import { formatInspect } from '../report/inspect-table.js';
import type { Argv } from 'yargs';
import { inspect, type InspectOptions } from '../commands/inspect.js';
import { defineCommand, type ArgsOf } from './command.js';
import { globalOptions, openFrom, runPositional, selectionFrom, selectionOptions } from './common-options.js';

const builder = (y: Argv) =>
  runPositional(selectionOptions(globalOptions(y)))
    .option('onnx', { type: 'string', describe: "Also show how the graph's initializers bind to checkpoint tensors" })
    .option('map', {
      type: 'string',
      array: true,
      describe: "'REGEX=>REPLACEMENT' rewriting initializer names into checkpoint names (as sweep-window)",
    })
    .example('$0 inspect runs/exp1', 'Show the series in a Trainer output folder')
    .example('$0 inspect runs/exp1 --onnx model.onnx', 'Show which checkpoint tensor feeds each ONNX initializer')
    .example("$0 inspect 'runs/exp1/checkpoint-*' --last 5 --json", 'The 5 newest, as JSON');

export type InspectArgs = ArgsOf<typeof builder>;

/** The parsed arguments as the command's options (the argv -> options table test checks this). */
export function inspectRequest(a: InspectArgs): InspectOptions {
  return { inputs: a.run, ...openFrom(a), selection: selectionFrom(a), onnx: a.onnx, maps: a.map };
}

export const inspectCommand = defineCommand({
  command: 'inspect <run..>',
  describe: 'List the checkpoint series found (steps, files, dtypes) and check the checkpoints agree',
  builder,
  handler: async (a) => {
    const report = await inspect(inspectRequest(a));
    if (!a.quiet) for (const line of report.notes) process.stderr.write(`avg-ckpt: ${line}\n`);
    process.stdout.write(a.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInspect(report)}\n`);
  },
});
