/** `--method` and its parameters as command-line options. */
import type { Argv } from 'yargs';
import { METHODS } from '../recipes/from-spec.js';

export function methodOptions<T>(y: Argv<T>) {
  return y
    .option('method', { alias: 'm', choices: METHODS, default: 'uniform' as const, describe: 'Averaging method (each is a weight vector over the selection)' })
    .option('k', { type: 'number', describe: 'lawa: window length (default: --last)' })
    .option('decay', { type: 'number', describe: 'ema: decay g per saved checkpoint (the paper: 0.9)' })
    .option('decay-per-step', { type: 'number', describe: 'ema: decay b per optimizer step (e.g. 0.999), b^gap between checkpoints' })
    .option('weights', { type: 'string', describe: 'weights: one weight per selected checkpoint, oldest first (normalised)' })
    .option('sigma-rel', { type: 'number', describe: 'phema: relative width of the power EMA profile (EDM2: 0.05-0.10)' });
}
