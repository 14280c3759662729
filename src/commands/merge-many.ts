/**
 * `merge` with several recipes: each recipe resolved exactly as `merge` resolves it alone (its
 * selection, its weight vector), then all written in one pass over the run (engine mergeMany):
 * every output is the bytes `merge` writes for that recipe alone.
 */
import { readFile } from 'node:fs/promises';
import { mergeMany, type ManyOptions } from '../engine/merge.js';
import type { StreamProgress } from '../engine/stream.js';
import { AvgCkptError, ioError } from '../errors.js';
import type { OpenOptions } from '../io/formats/format.js';
import { checkpointInputs } from '../io/output-guard.js';
import type { MethodSpec } from '../recipes/from-spec.js';
import { allMethodOptions, methodNamed } from '../recipes/registry.js';
import { discoverSeries, type Series } from '../series/discover.js';
import type { SelectionOptions } from '../series/select.js';
import { resolveMerge, type MergeRunResult, type ResolvedMerge } from './merge.js';

/** One recipe as `merge` would run it alone: a method with its options, and a selection. */
export interface Recipe {
  readonly method: MethodSpec;
  readonly select?: SelectionOptions;
}

/** The placeholder in an output path that each recipe's name replaces (`lawa-8`, `ema-0.9`). */
export const NAME_PLACEHOLDER = '{name}';

export interface RecipesRunOptions extends Omit<ManyOptions, 'onProgress'> {
  readonly recipes: readonly Recipe[];
  /** Every output: `{name}` is replaced by the recipe's name; required with several recipes. */
  readonly output: string;
  readonly onNote?: (line: string) => void;
  /** How checkpoint files are opened (`--key`). */
  readonly open?: OpenOptions;
  readonly onProgress?: (p: StreamProgress, bytesToRead: number) => void;
}

/** Each recipe resolved over the one discovered series, and where it goes. */
export async function resolveRecipes(
  inputs: string[] | Series,
  recipes: readonly Recipe[],
  output?: string,
  open: OpenOptions = {},
): Promise<{ series: Series; resolved: ResolvedMerge[]; outputs: string[] }> {
  if (recipes.length === 0) throw new AvgCkptError('usage', 'no recipe to merge');
  if (output !== undefined && recipes.length > 1 && !output.includes(NAME_PLACEHOLDER)) {
    throw new AvgCkptError(
      'usage',
      `${recipes.length} recipes need ${NAME_PLACEHOLDER} in -o (e.g. -o 'out/${NAME_PLACEHOLDER}/'), one output each`,
    );
  }
  const series = Array.isArray(inputs) ? await discoverSeries(inputs, { open }) : inputs;
  const resolved: ResolvedMerge[] = [];
  for (const r of recipes) resolved.push(await resolveMerge(series, r.select, r.method, open));
  const outputs = resolved.map((r) => (output ?? '').replaceAll(NAME_PLACEHOLDER, r.vector.name));
  return { series, resolved, outputs };
}

/** Writes every recipe's average in one pass over the run. */
export async function mergeRecipes(inputs: string[] | Series, options: RecipesRunOptions): Promise<MergeRunResult[]> {
  const { recipes, output, onNote, onProgress, open, ...rest } = options;
  const { series, resolved, outputs } = await resolveRecipes(inputs, recipes, output, open);
  series.notes.forEach((line) => onNote?.(line));
  const started = performance.now();
  // the checkpoints any recipe selected, oldest first: each vector picks its own by step
  const union = series.checkpoints.filter((c) => resolved.some((r) => r.selected.includes(c)));
  const results = await mergeMany(
    union,
    resolved.map((r) => r.vector),
    outputs,
    {
      ...rest,
      // every checkpoint of the run, not only the selected ones, is safe from the outputs
      inputs: [...checkpointInputs(series.checkpoints), ...(rest.inputs ?? [])],
      onProgress: (p, _plans, bytesToRead) => onProgress?.(p, bytesToRead),
    },
  );
  const seconds = (performance.now() - started) / 1000;
  return results.map((result, i) => ({ ...resolved[i], ...result, seconds }));
}

const SELECTION_KEYS = ['fromStep', 'toStep', 'every', 'last'] as const;

/**
 * Recipes from a JSON file: a list of objects, each a `method` with its options and optionally
 * its own selection (`fromStep`, `toStep`, `every`, `last`), e.g. `[{"method": "lawa", "k": 8},
 * {"method": "ema", "decay": 0.9, "last": 20}]`. `defaults` is the command line's selection.
 */
export async function recipesFromFile(path: string, defaults: SelectionOptions = {}): Promise<Recipe[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw ioError(path, e, 'read');
  }
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch (e) {
    throw new AvgCkptError('bad-recipes', `is not JSON (${(e as Error).message})`, { file: path });
  }
  if (!Array.isArray(list) || list.length === 0) {
    throw new AvgCkptError(
      'bad-recipes',
      'must hold a non-empty JSON list of recipes, e.g. [{"method": "lawa", "k": 8}]',
      { file: path },
    );
  }
  const methodKeys = new Set(Object.keys(allMethodOptions()));
  return list.map((item: unknown, i) => {
    const where = `recipe ${i + 1}`;
    if (
      typeof item !== 'object' ||
      item === null ||
      Array.isArray(item) ||
      typeof (item as { method?: unknown }).method !== 'string'
    ) {
      throw new AvgCkptError('bad-recipes', `${where}: an object with a "method" (e.g. {"method": "lawa", "k": 8})`, {
        file: path,
      });
    }
    const entries = Object.entries(item as Record<string, unknown>);
    for (const [k, v] of entries) {
      const known = k === 'method' || methodKeys.has(k) || (SELECTION_KEYS as readonly string[]).includes(k);
      if (!known) throw new AvgCkptError('bad-recipes', `${where}: unknown key "${k}"`, { file: path });
      if (k !== 'method' && typeof v !== 'number' && typeof v !== 'string') {
        throw new AvgCkptError('bad-recipes', `${where}: "${k}" must be a number or a string`, { file: path });
      }
    }
    const method = methodNamed((item as { method: string }).method).name;
    const spec = Object.fromEntries(entries.filter(([k]) => methodKeys.has(k)));
    const select = {
      ...defaults,
      ...Object.fromEntries(entries.filter(([k]) => (SELECTION_KEYS as readonly string[]).includes(k))),
    };
    // the keys were checked against the registry's options and the selection's fields above
    return { method: { ...spec, method } as MethodSpec, select: select as SelectionOptions };
  });
}
