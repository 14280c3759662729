/**
 * The `avg-ckpt merge` command that writes a given average: the same run and selection, and the
 * method's own flags (from the method registry) where the method is a function of the selection
 * (LAWA, EMA, power EMA), otherwise the weights themselves (raw, greedy soup, uniform from a
 * step), so the command reproduces the vector exactly.
 */
import { methodProducing } from '../recipes/registry.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { SelectionOptions } from '../series/select.js';

/** Quotes a word for a POSIX shell when it needs quoting. */
export function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

function selectionFlags(s: SelectionOptions): string[] {
  const out: string[] = [];
  if (s.fromStep !== undefined) out.push('--from-step', String(s.fromStep));
  if (s.toStep !== undefined) out.push('--to-step', String(s.toStep));
  if (s.every !== undefined) out.push('--every', String(s.every));
  if (s.last !== undefined) out.push('--last', String(s.last));
  return out;
}

/**
 * Any other vector as weights. Without --every the selection is a contiguous part of the run, so
 * it narrows to the steps from the first to the last non-zero weight (all of them selected),
 * which keeps the list short; equal weights there are just `uniform`.
 */
function weightFlags(selection: SelectionOptions, v: WeightVector): string[] {
  let sel = selectionFlags(selection);
  let w = v.weights;
  if (selection.every === undefined) {
    const first = w.findIndex((x) => x > 0);
    const last = w.length - 1 - [...w].reverse().findIndex((x) => x > 0);
    sel = ['--from-step', String(v.steps[first]), '--to-step', String(v.steps[last])];
    w = w.slice(first, last + 1);
  }
  if (w.every((x) => x === w[0])) return [...sel, '--method', 'uniform'];
  // Relative to the largest weight, so soups read as 0s and 1s; merge normalises.
  const top = Math.max(...w);
  return [
    ...sel,
    '--method',
    'weights',
    '--weights',
    w.map((x) => String(Number((x / top).toPrecision(12)))).join(','),
  ];
}

/** The command line, as words, that merges `vector` (over the selection's steps) from `inputs` under `selection`. */
export function mergeCommandFor(
  inputs: readonly string[],
  selection: SelectionOptions,
  vector: WeightVector,
  output = 'averaged.safetensors',
): string[] {
  const method = methodProducing(vector.method)?.mergeFlags(vector);
  const flags = method === undefined ? weightFlags(selection, vector) : [...selectionFlags(selection), ...method];
  return ['avg-ckpt', 'merge', ...inputs, ...flags, '-o', output];
}

export function formatCommand(words: readonly string[]): string {
  return words.map(shellWord).join(' ');
}
