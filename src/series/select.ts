/** The selection options every command shares: --from-step, --to-step, --every, --last. */
import { AvgCkptError } from '../errors.js';
import type { Checkpoint } from './checkpoint.js';

export interface SelectionOptions {
  fromStep?: number;
  toStep?: number;
  /** Every N-th checkpoint, counted back from the newest. */
  every?: number;
  /** The K newest (after --every). */
  last?: number;
}

/** Applies the range, then --every, then --last. Throws on an empty result. */
export function selectCheckpoints(all: readonly Checkpoint[], opts: SelectionOptions, what = 'the run'): Checkpoint[] {
  for (const [flag, v] of [
    ['--every', opts.every],
    ['--last', opts.last],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) {
      throw new AvgCkptError('usage', `${flag} must be a whole number >= 1, got ${v}`);
    }
  }
  let sel = all.filter(
    (c) =>
      (opts.fromStep === undefined || c.step >= opts.fromStep) && (opts.toStep === undefined || c.step <= opts.toStep),
  );
  if (opts.every !== undefined) {
    const n = opts.every;
    sel = sel.filter((_, i) => (sel.length - 1 - i) % n === 0);
  }
  if (opts.last !== undefined) sel = sel.slice(-opts.last);
  if (sel.length === 0) {
    const range = `steps ${opts.fromStep ?? 'start'}..${opts.toStep ?? 'end'}`;
    throw new AvgCkptError(
      'empty-selection',
      `no checkpoint of ${what} is selected (${range}; the run has steps ${all[0]?.step ?? '-'}..${all[all.length - 1]?.step ?? '-'})`,
    );
  }
  return sel;
}
