/**
 * The candidate grid of a sweep: LAWA windows ending at the newest checkpoint, EMA decays over
 * the saved checkpoints and per optimizer step, uniform averages from a step, and the newest raw
 * checkpoint as the baseline, and post-hoc power EMAs. Every candidate is a recipe's weight vector.
 */
import { ema, emaPerStep } from '../recipes/ema.js';
import { lawa, raw } from '../recipes/lawa.js';
import { phema } from '../recipes/phema.js';
import { uniform } from '../recipes/uniform.js';
import { support, type WeightVector } from '../recipes/weight-vector.js';

export interface GridOptions {
  readonly windows?: readonly number[];
  readonly ema?: readonly number[];
  readonly emaPerStep?: readonly number[];
  readonly uniformFrom?: readonly number[];
  /** Post-hoc power EMA widths (sigma_rel). */
  readonly phema?: readonly number[];
}

/**
 * Without options: the averaging guide's findings. The best horizon is about 1% of training and
 * the paper recommends LAWA over ~20 checkpoints and EMA with a checkpoint-level decay of 0.9;
 * a doubling ladder of windows around that and a few decays cover runs saved more or less often.
 */
export const DEFAULT_GRID = { windows: [2, 4, 8, 16, 20, 32, 64], ema: [0.5, 0.8, 0.9, 0.95] } as const;

export interface Grid {
  /** The baseline first, then the averages. */
  readonly candidates: readonly WeightVector[];
  /** Candidates dropped (a window longer than the series), for the user. */
  readonly notes: readonly string[];
}

export function candidateGrid(steps: readonly number[], opts: GridOptions = {}): Grid {
  const none = opts.windows === undefined && opts.ema === undefined && opts.emaPerStep === undefined && opts.uniformFrom === undefined && opts.phema === undefined;
  const windows = none ? DEFAULT_GRID.windows : opts.windows ?? [];
  const decays = none ? DEFAULT_GRID.ema : opts.ema ?? [];
  const notes: string[] = [];
  const out: WeightVector[] = [raw(steps)];
  const fits = [...new Set(windows)].filter((k) => k <= steps.length);
  const tooLong = [...new Set(windows)].filter((k) => k > steps.length);
  if (tooLong.length > 0) {
    // with the default ladder, the whole series stands in for the windows it cannot hold
    if (none && !fits.includes(steps.length)) fits.push(steps.length);
    notes.push(`window${tooLong.length > 1 ? 's' : ''} ${tooLong.join(', ')} skipped: the selection has ${steps.length} checkpoints`);
  }
  for (const k of fits) out.push(lawa(steps, k));
  for (const g of decays) out.push(ema(steps, g));
  for (const b of opts.emaPerStep ?? []) out.push(emaPerStep(steps, b));
  for (const s of opts.uniformFrom ?? []) out.push(uniform(steps, s));
  for (const s of opts.phema ?? []) out.push(phema(steps, s));
  return { candidates: out, notes };
}

/** The steps any candidate reads: the checkpoints the mixture must hold. */
export function touchedSteps(candidates: readonly WeightVector[]): number[] {
  return [...new Set(candidates.flatMap(support))].sort((a, b) => a - b);
}
