/**
 * The command line: declares the commands, and is the one place that catches errors and maps
 * them to exit codes.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { AvgCkptError, exitCodeFor } from '../errors.js';
import { removeTemporaryOutputs } from '../io/atomic-output.js';
import { curveCommand } from './curve.js';
import { inspectCommand } from './inspect.js';
import { mergeCommand } from './merge.js';
import { sweepWindowCommand } from './sweep-window.js';
import { VERSION } from '../version.js';

function installSignalCleanup(): void {
  // SIGHUP too: what a closed terminal or a dropped ssh session sends
  const exitCodes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  for (const sig of Object.keys(exitCodes) as (keyof typeof exitCodes)[]) {
    process.once(sig, () => {
      removeTemporaryOutputs();
      process.stderr.write(`\navg-ckpt: interrupted by ${sig}; nothing was written and temporary files were removed\n`);
      process.exit(exitCodes[sig]);
    });
  }
}

export async function main(argv: string[] = hideBin(process.argv)): Promise<number> {
  installSignalCleanup();
  const verbose = argv.includes('--verbose');
  try {
    await yargs(argv)
      .scriptName('avg-ckpt')
      .usage('$0 <command> [options]\n\nAverage the checkpoints of a training run, and find the average that scores best.')
      .command(inspectCommand)
      .command(mergeCommand)
      .command(sweepWindowCommand)
      .command(curveCommand)
      .demandCommand(1, 'Name a command: inspect, merge, sweep-window, curve.')
      .strict()
      .version(VERSION)
      .help()
      .wrap(Math.min(110, process.stdout.columns ?? 100))
      .fail((msg, err) => {
        if (err) throw err;
        throw new AvgCkptError('usage', msg);
      })
      .parseAsync();
    return 0;
  } catch (err) {
    removeTemporaryOutputs();
    const code = exitCodeFor(err);
    if (err instanceof AvgCkptError && code !== 70) {
      process.stderr.write(`avg-ckpt: ${err.oneLine()}\n`);
      if (code === 2) process.stderr.write('Run avg-ckpt --help for usage.\n');
      if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
    } else {
      process.stderr.write(`avg-ckpt: internal error, please report it with the command you ran:\n${(err as Error)?.stack ?? String(err)}\n`);
    }
    return code;
  }
}
