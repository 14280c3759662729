/**
 * The averaging methods, in the order sweeps list them. Adding a method is its own file (the
 * recipe and its `defineMethod`) and one line here: `merge --method`, the sweep grid and its
 * options, the chart panels, `curve`, and the reproducing `merge` command all read this list.
 */
import { AvgCkptError } from '../errors.js';
import { emaMethod } from './ema.js';
import { weightsMethod } from './explicit.js';
import { lawaMethod } from './lawa.js';
import type { Family, MethodDefinition, MethodOptions, OptionValues } from './method.js';
import { phemaMethod } from './phema.js';
import { uniformMethod } from './uniform.js';

export const METHOD_REGISTRY = [lawaMethod, emaMethod, uniformMethod, weightsMethod, phemaMethod] as const;

type AllOptionValues<T extends readonly unknown[]> = T extends readonly [infer H, ...infer R]
  ? (H extends { readonly options: infer O extends MethodOptions } ? OptionValues<O> : unknown) & AllOptionValues<R>
  : unknown;

/** Every method's `merge` option values, by camelCase key. */
export type MethodOptionValues = AllOptionValues<typeof METHOD_REGISTRY>;

/** The `--method` values. */
export const METHODS: readonly string[] = METHOD_REGISTRY.map((m) => m.name);

/** The families of all methods, in registry order. */
export const FAMILIES: readonly Family[] = METHOD_REGISTRY.flatMap((m) => m.families);

/** Every method's options, each once. */
export function allMethodOptions(): MethodOptions {
  return Object.assign({}, ...METHOD_REGISTRY.map((m) => m.options)) as MethodOptions;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return d[b.length];
}

/** The closest of `names` to `word` within a couple of edits, for "did you mean". */
export function closest(word: string, names: readonly string[]): string | undefined {
  const scored = names.map((n) => ({ n, d: distance(word.toLowerCase(), n.toLowerCase()) })).sort((a, b) => a.d - b.d);
  return scored[0] !== undefined && scored[0].d <= Math.max(2, Math.floor(word.length / 3)) ? scored[0].n : undefined;
}

/** The method called `name` (any case); an unknown name is a usage error with a suggestion. */
export function methodNamed(name: string): MethodDefinition {
  const found = METHOD_REGISTRY.find((m) => m.name === name.toLowerCase());
  if (found !== undefined) return found as MethodDefinition;
  const near = closest(name, METHODS);
  throw new AvgCkptError(
    'usage',
    `unknown method ${name}${near === undefined ? '' : `; did you mean ${near}?`} (methods: ${METHODS.join(', ')})`,
  );
}

/** The method that made vectors tagged `method` (undefined for raw checkpoints and greedy soups). */
export function methodProducing(method: string): MethodDefinition | undefined {
  return METHOD_REGISTRY.find((m) => m.produces.includes(method)) as MethodDefinition | undefined;
}
