/**
 * The `avg-ckpt merge` command that writes a given average: the same run and selection, and the
 * method's own flags where the method is a function of the selection (LAWA, EMA, power EMA),
 * otherwise the weights themselves (raw, greedy soup, uniform from a step), so the command
 * reproduces the vector exactly.
 */
import type { WeightVector } from '../recipes/weight-vector.js';
import type { SelectionOptions } from '../series/select.js';

/** Quotes a word for a POSIX shell when it needs quoting. */
export function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

function methodFlags(v: WeightVector): string[] {
  const p = v.params;
  switch (v.method) {
    case 'lawa':
      return ['--method', 'lawa', '--k', String(p.k)];
    case 'ema':
      return ['--method', 'ema', '--decay', String(p.decay)];
    case 'ema-per-step':
      return ['--method', 'ema', '--decay-per-step', String(p.decay_per_step)];
    case 'phema':
      return ['--method', 'phema', '--sigma-rel', String(p.sigma_rel)];
    case 'uniform':
      if (p.from_step === undefined) return ['--method', 'uniform'];
      break;
    default:
      break;
  }
  // Relative to the largest weight, so soups and single checkpoints read as 0s and 1s; merge normalises.
  const top = Math.max(...v.weights);
  return ['--method', 'weights', '--weights', v.weights.map((w) => String(Number((w / top).toPrecision(12)))).join(',')];
}

/** The command line, as words, that merges `vector` from `inputs` under `selection`. */
export function mergeCommandFor(inputs: readonly string[], selection: SelectionOptions, vector: WeightVector, output = 'averaged.safetensors'): string[] {
  const sel: string[] = [];
  if (selection.fromStep !== undefined) sel.push('--from-step', String(selection.fromStep));
  if (selection.toStep !== undefined) sel.push('--to-step', String(selection.toStep));
  if (selection.every !== undefined) sel.push('--every', String(selection.every));
  if (selection.last !== undefined) sel.push('--last', String(selection.last));
  return ['avg-ckpt', 'merge', ...inputs, ...sel, ...methodFlags(vector), '-o', output];
}

export function formatCommand(words: readonly string[]): string {
  return words.map(shellWord).join(' ');
}
