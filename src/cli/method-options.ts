/** The options the method registry declares: `--method` and its options (merge), the family options (sweep-window, curve). */
import type { Argv } from 'yargs';
import type { MethodSpec } from '../recipes/from-spec.js';
import { kebab, type MethodOptions } from '../recipes/method.js';
import { allMethodOptions, FAMILIES, methodNamed, METHODS, type MethodOptionValues } from '../recipes/registry.js';
import { numberList } from './values.js';

/** Adds one option per entry of `options` (camelCase key -> kebab-case flag). */
export function registryOptions<T, V>(y: Argv<T>, options: MethodOptions): Argv<T & V> {
  let out: Argv<T> = y;
  for (const [key, o] of Object.entries(options)) out = out.option(kebab(key), { type: o.type, describe: o.describe });
  // yargs types options declared one by one; these come from a list, so their type is stated here, from the registry
  return out as Argv<T & V>;
}

export function methodOptions<T>(y: Argv<T>) {
  const withMethod = y.option('method', {
    alias: 'm',
    type: 'string',
    default: 'uniform',
    describe: `Averaging method (each is a weight vector over the selection): ${METHODS.join(', ')}`,
  });
  return registryOptions<typeof withMethod extends Argv<infer U> ? U : never, MethodOptionValues>(
    withMethod,
    allMethodOptions(),
  );
}

/** A family's option: `--windows 2,4,8` on sweep-window, `--window 5` on curve. */
export interface FamilyFlag {
  readonly flag: string;
  /** The key its numbers go under (`GridOptions`, `CurveOptions.averages`). */
  readonly key: string;
  readonly describe: string;
}

/** sweep-window's grid options, one per registered family that sweeps. */
export const SWEEP_FLAGS: readonly FamilyFlag[] = FAMILIES.flatMap((f) =>
  f.sweep === undefined ? [] : [{ flag: kebab(f.sweep.key), key: f.sweep.key, describe: f.sweep.describe }],
);

/** curve's options, one per registered family that `curve` follows. */
export const CURVE_FLAGS: readonly FamilyFlag[] = FAMILIES.flatMap((f) =>
  f.curve === undefined ? [] : [{ flag: f.curve.flag, key: f.curve.key, describe: f.curve.describe }],
);

/** One string option (numbers separated by commas) per family flag; read back with `familyValues`. */
export function familyOptions<T>(y: Argv<T>, flags: readonly FamilyFlag[]): Argv<T> {
  let out = y;
  for (const f of flags) out = out.option(f.flag, { type: 'string', describe: f.describe });
  return out;
}

/** The numbers given to each family flag, by key (undefined where the flag was not given). */
export function familyValues(
  argv: Readonly<Record<string, unknown>>,
  flags: readonly FamilyFlag[],
): Record<string, number[] | undefined> {
  return Object.fromEntries(flags.map((f) => [f.key, numberList(f.flag, argv[f.flag])]));
}

/** The method and its option values out of the parsed arguments (the rest of argv left behind). */
export function methodSpecFrom(a: MethodSpec): MethodSpec {
  methodNamed(a.method); // an unknown method is refused before the run is read
  const keys = new Set(Object.keys(allMethodOptions()));
  const given = Object.entries(a).filter(([k, v]) => keys.has(k) && v !== undefined);
  // the keys are the registry's own option keys, whose value types MethodSpec states
  return { method: a.method, ...(Object.fromEntries(given) as MethodOptionValues) };
}
