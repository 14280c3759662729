/**
 * Greedy soup (Wortsman et al. 2022, Alg. 1) over the K newest checkpoints: sort them by their
 * held-out metric, start from the best, and add the next one (uniform over the members) only if
 * the held-out metric of the soup strictly improves.
 */
import { AvgCkptError } from '../errors.js';
import { raw } from './lawa.js';
import { weightVector, type WeightVector } from './weight-vector.js';

export interface GreedySoupResult<M> {
  /** Method `greedy-soup`: 1/m on each of the m members, 0 elsewhere. */
  readonly vector: WeightVector;
  /** The held-out score of `vector`, as computed while building it. */
  readonly score: M;
}

function soup(steps: readonly number[], members: ReadonlySet<number>, k: number): WeightVector {
  const w = steps.map((s) => (members.has(s) ? 1 / members.size : 0));
  return weightVector(`greedy-soup-${k}`, 'greedy-soup', { k, members: members.size }, steps, w);
}

/**
 * @param score held-out score of a candidate (e.g. `Evaluator.score`)
 * @param better true when `a` is strictly better than `b` (e.g. `Evaluator.better`); it also
 *   orders the checkpoints, ties going to the newer one.
 */
export async function greedySoup<M>(
  steps: readonly number[],
  k: number,
  score: (v: WeightVector) => Promise<M>,
  better: (a: M, b: M) => boolean,
): Promise<GreedySoupResult<M>> {
  if (!Number.isSafeInteger(k) || k < 1)
    throw new AvgCkptError('usage', `--greedy K must be a whole number >= 1, got ${k}`);
  if (k > steps.length)
    throw new AvgCkptError(
      'empty-selection',
      `--greedy ${k} asks for more than the ${steps.length} selected checkpoints`,
    );
  const pool: { step: number; score: M }[] = [];
  for (const step of steps.slice(-k)) pool.push({ step, score: await score(raw(steps, step)) });
  pool.sort((a, b) => (better(a.score, b.score) ? -1 : better(b.score, a.score) ? 1 : b.step - a.step));

  const members = new Set([pool[0].step]);
  let current = pool[0].score;
  for (const { step } of pool.slice(1)) {
    const trial = new Set([...members, step]);
    const s = await score(soup(steps, trial, k));
    if (better(s, current)) {
      members.add(step);
      current = s;
    }
  }
  return { vector: soup(steps, members, k), score: current };
}
