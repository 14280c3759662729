/**
 * What a method declares about itself, once: the options `merge --method NAME` takes and how they
 * become a weight vector, the families of vectors a sweep, a chart and `curve` vary along one
 * parameter, and the `merge` flags that reproduce a vector it made. The registry
 * (recipes/registry.ts) lists the methods; every command reads them from there.
 */
import { AvgCkptError } from '../errors.js';
import type { WeightVector } from './weight-vector.js';

/** A `merge` option of a method; the key is camelCase (`sigmaRel`), the flag its kebab-case (`--sigma-rel`). */
export interface MethodOption {
  readonly type: 'number' | 'string';
  readonly describe: string;
}

export type MethodOptions = Readonly<Record<string, MethodOption>>;

/** The values of a method's options, as the user gave them. */
export type OptionValues<O extends MethodOptions> = {
  readonly [K in keyof O]?: O[K]['type'] extends 'number' ? number : string;
};

/** What a method may read besides its own options. */
export interface SpecContext {
  /** The selected steps, oldest first. */
  readonly steps: readonly number[];
  /** False when some checkpoints have no real step number (order as given). */
  readonly stepsKnown: boolean;
  /** The selection's `last` (how many newest checkpoints were kept), when given. */
  readonly last?: number;
}

/**
 * Vectors that vary along one numeric parameter: LAWA by window, EMA by decay. The sweep scores
 * a grid of values; a chart plots the metric against the parameter; `curve` follows each value
 * along the run.
 */
export interface Family {
  /** The vectors' `method` tag (`ema-per-step`) and the parameter in their `params` (`decay_per_step`). */
  readonly method: string;
  readonly param: string;
  /** The vector at one parameter value over `steps`; throws for a value that cannot apply. */
  vector(steps: readonly number[], value: number): WeightVector;
  /**
   * sweep-window: `key` names the grid entry (`grid.windows`) and, kebab-cased, the option
   * (`--windows`). `defaults` are scored when no family is asked for. `fitsIn` (default: always)
   * says whether a value applies to a selection of n checkpoints; values that do not are skipped
   * with a note, and with the default grid the whole selection stands in for them.
   */
  readonly sweep?: {
    readonly key: string;
    readonly describe: string;
    readonly defaults?: readonly number[];
    readonly fitsIn?: (value: number, n: number) => boolean;
    /** The value that covers a whole selection of n checkpoints (LAWA: k = n). */
    readonly whole?: (n: number) => number;
  };
  /**
   * curve: the option (`--window`, its value shown as `placeholder`) and the key of
   * `CurveOptions.averages`; a point exists once `needs(value)` checkpoints are in (default 1).
   */
  readonly curve?: {
    readonly key: string;
    readonly flag: string;
    readonly placeholder: string;
    readonly describe: string;
    readonly needs?: (value: number) => number;
  };
  /** The chart panel: its title, and whether the parameter reads best on a log2 axis. */
  readonly chart?: { readonly title: string; readonly log2?: boolean };
}

export interface MethodDefinition<O extends MethodOptions = MethodOptions> {
  /** The `--method` value. */
  readonly name: string;
  /** The `merge` options only this method reads. */
  readonly options: O;
  /** The weight vector over the selection for these option values. */
  fromSpec(values: OptionValues<O>, context: SpecContext): WeightVector;
  /** The vector `method` tags this method makes (`ema` and `ema-per-step`). */
  readonly produces: readonly string[];
  readonly families: readonly Family[];
  /** The `merge` flags that make `v` again from the same selection; undefined when only explicit weights can. */
  mergeFlags(v: WeightVector): string[] | undefined;
}

/** Declares a method with its option types kept, so `fromSpec` sees its own options typed. */
export function defineMethod<const O extends MethodOptions>(d: MethodDefinition<O>): MethodDefinition<O> {
  return d;
}

/** `sigmaRel` -> `sigma-rel`. */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** An option a method cannot do without. */
export function required<T>(value: T | undefined, flag: string, method: string): T {
  if (value === undefined) throw new AvgCkptError('usage', `--method ${method} needs ${flag}`);
  return value;
}
