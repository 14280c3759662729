/** A method and its parameters as users give them; turned into a weight vector over the selection. */
import { methodNamed, type MethodOptionValues } from './registry.js';
import type { WeightVector } from './weight-vector.js';

export { METHODS } from './registry.js';

export type MethodSpec = MethodOptionValues & {
  /** A registered method's name (recipes/registry.ts), any case. */
  readonly method: string;
  /** The selection's --last: LAWA's window when no k is given. */
  readonly last?: number;
};

export function vectorFromSpec(spec: MethodSpec, steps: readonly number[], stepsKnown: boolean): WeightVector {
  return methodNamed(spec.method).fromSpec(spec, { steps, stepsKnown, last: spec.last });
}
