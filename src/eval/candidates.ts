/**
 * The candidate grid of a sweep: the newest raw checkpoint as the baseline, then each registered
 * family's values (LAWA windows ending at the newest checkpoint, EMA decays over the saved
 * checkpoints and per optimizer step, uniform averages from a step, post-hoc power EMAs). Every
 * candidate is a recipe's weight vector.
 */
import { raw } from '../recipes/lawa.js';
import { FAMILIES } from '../recipes/registry.js';
import { support, type WeightVector } from '../recipes/weight-vector.js';

/** Values per family, by the family's sweep key (`windows`, `ema`, `emaPerStep`, `uniformFrom`, `phema`). */
export type GridOptions = Readonly<Record<string, readonly number[] | undefined>>;

const SWEPT = FAMILIES.flatMap((f) => (f.sweep === undefined ? [] : [{ family: f, sweep: f.sweep }]));

/**
 * Without options: the averaging guide's findings. The best horizon is about 1% of training and
 * the paper recommends LAWA over ~20 checkpoints and EMA with a checkpoint-level decay of 0.9;
 * a doubling ladder of windows around that and a few decays cover runs saved more or less often
 * (each family's `defaults`).
 */
export const DEFAULT_GRID: GridOptions = Object.fromEntries(
  SWEPT.flatMap(({ sweep }) => (sweep.defaults === undefined ? [] : [[sweep.key, sweep.defaults]])),
);

export interface Grid {
  /** The baseline first, then the averages. */
  readonly candidates: readonly WeightVector[];
  /** Candidates dropped (a window longer than the series), for the user. */
  readonly notes: readonly string[];
}

export function candidateGrid(steps: readonly number[], opts: GridOptions = {}): Grid {
  const none = SWEPT.every(({ sweep }) => opts[sweep.key] === undefined);
  const grid = none ? DEFAULT_GRID : opts;
  const notes: string[] = [];
  const out: WeightVector[] = [raw(steps)];
  for (const { family, sweep } of SWEPT) {
    const values = [...new Set(grid[sweep.key] ?? [])];
    const fits = values.filter((v) => sweep.fitsIn?.(v, steps.length) ?? true);
    const skipped = values.filter((v) => !fits.includes(v));
    if (skipped.length > 0) {
      // with the default grid, the whole series stands in for the values it cannot hold
      const whole = sweep.whole?.(steps.length);
      if (none && whole !== undefined && !fits.includes(whole)) fits.push(whole);
      notes.push(
        `${family.method} with ${family.param} = ${skipped.join(', ')} skipped: the selection has ${steps.length} checkpoints`,
      );
    }
    for (const v of fits) out.push(family.vector(steps, v));
  }
  return { candidates: out, notes };
}

/** The steps any candidate reads: the checkpoints the mixture must hold. */
export function touchedSteps(candidates: readonly WeightVector[]): number[] {
  return [...new Set(candidates.flatMap(support))].sort((a, b) => a - b);
}
