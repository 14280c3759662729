/** Options every command shares: output modes, the run, and the checkpoint selection. */
import type { Argv } from 'yargs';
import type { OpenOptions } from '../io/formats/format.js';
import type { SelectionOptions } from '../series/select.js';

export function globalOptions<T>(y: Argv<T>) {
  return y
    .option('json', { type: 'boolean', default: false, describe: 'Print machine-readable JSON on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No progress bar or notes on stderr' })
    .option('verbose', { type: 'boolean', default: false, describe: 'Show stack traces with errors' })
    .option('s3-endpoint', {
      type: 'string',
      describe: 'S3-compatible endpoint for s3:// paths (MinIO, GCS, ...; default: AWS_ENDPOINT_URL)',
    });
}

/** The `<run..>` positional of every command, and how its files are opened. */
export function runPositional<T>(y: Argv<T>) {
  return y
    .positional('run', {
      type: 'string',
      array: true,
      demandOption: true,
      describe: 'A run folder, a glob, or checkpoint files/folders',
    })
    .option('key', {
      type: 'string',
      describe:
        'PyTorch files: the dotted key of the state dict (default: the plain state dict, else state_dict, model, ...)',
    });
}

/** `--key` as the commands' `open` option (absent when not given). */
export function openFrom(a: { key?: string }): { open?: OpenOptions } {
  return a.key === undefined ? {} : { open: { key: a.key } };
}

export function selectionOptions<T>(y: Argv<T>) {
  return y
    .option('from-step', { type: 'number', describe: 'First step to consider (inclusive)' })
    .option('to-step', { type: 'number', describe: 'Last step to consider (inclusive)' })
    .option('every', { type: 'number', describe: 'Keep every N-th checkpoint, counted back from the newest' })
    .option('last', { type: 'number', describe: 'Keep the K newest checkpoints (after --every)' });
}

export function selectionFrom(a: {
  fromStep?: number;
  toStep?: number;
  every?: number;
  last?: number;
}): SelectionOptions {
  return { fromStep: a.fromStep, toStep: a.toStep, every: a.every, last: a.last };
}
