/**
 * The command line: declares the commands, and is the one place that maps errors to exit codes
 * (the table is errors.ts `EXIT_CODES`; signals: cli/process.ts) and cleans up after every run.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { AvgCkptError, EXIT_CODES, exitCodeFor } from '../errors.js';
import { VERSION } from '../version.js';
import { configureS3 } from '../io/storage/s3-settings.js';
import { curveCommand } from './curve.js';
import { inspectCommand } from './inspect.js';
import { mergeCommand } from './merge.js';
import { reportCommand } from './report.js';
import { sweepWindowCommand } from './sweep-window.js';
import { cleanUp } from './process.js';
import { usageLine } from './usage.js';

const COMMANDS = [inspectCommand, mergeCommand, sweepWindowCommand, curveCommand, reportCommand] as const;

/** Runs one command line; returns its exit code (never throws, never exits the process). */
export async function main(argv: string[] = hideBin(process.argv)): Promise<number> {
  const verbose = argv.includes('--verbose');
  try {
    await yargs(argv)
      .scriptName('avg-ckpt')
      .usage(
        '$0 <command> [options]\n\nAverage the checkpoints of a training run, and find the average that scores best.',
      )
      .command(inspectCommand)
      .command(mergeCommand)
      .command(sweepWindowCommand)
      .command(curveCommand)
      .command(reportCommand)
      .demandCommand(1, `Name a command: ${COMMANDS.map((c) => String(c.command).split(' ')[0]).join(', ')}.`)
      .middleware((a) => {
        if (typeof a.s3Endpoint === 'string') configureS3({ endpoint: a.s3Endpoint });
      })
      .strict()
      .version(VERSION)
      .help()
      .wrap(Math.min(110, process.stdout.columns ?? 100))
      .fail((msg, err) => {
        if (err) throw err;
        throw new AvgCkptError('usage', usageLine(msg, argv, COMMANDS));
      })
      .parseAsync();
    return EXIT_CODES.ok;
  } catch (err) {
    const code = exitCodeFor(err);
    if (err instanceof AvgCkptError && code !== EXIT_CODES.internal) {
      process.stderr.write(`avg-ckpt: ${err.oneLine()}\n`);
      if (code === EXIT_CODES.usage) process.stderr.write('Run avg-ckpt --help for usage.\n');
      if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
    } else {
      process.stderr.write(
        `avg-ckpt: internal error, please report it with the command you ran:\n${(err as Error)?.stack ?? String(err)}\n`,
      );
    }
    return code;
  } finally {
    cleanUp();
  }
}
