/**
 * Which tensors of a torch file are the model: the plain state dict, else the first of the
 * usual training-state keys that holds tensors, or the dotted `--key` the user names. Inside
 * the chosen dict only tensors are allowed; anything else (an object of an unknown class, a
 * nested dict) is refused with the name of the global, so a file cannot smuggle an object into
 * what is averaged and written.
 */
import { AvgCkptError } from '../../errors.js';
import { globalName, type PyDict, type PyValue } from './pickle.js';
import { isTensor, type TorchTensor } from './torch-pickle.js';

/** Tried in this order when the file is not a plain state dict (plainLM, timm, fairseq, ...). */
export const STATE_DICT_KEYS = ['state_dict', 'model', 'model_state_dict', 'module', 'model_params'] as const;

export interface NamedTensor {
  readonly name: string;
  readonly tensor: TorchTensor;
}

export interface ChosenStateDict {
  /** The dotted key used, or '' for a plain state dict. */
  readonly key: string;
  readonly tensors: readonly NamedTensor[];
}

function isDict(v: PyValue | undefined): v is PyDict {
  return v !== null && v !== undefined && typeof v === 'object' && 'kind' in v && v.kind === 'dict';
}

function entry(d: PyDict, key: string): PyValue | undefined {
  for (const [k, v] of d.entries) if (k === key) return v;
  return undefined;
}

/** Tensors reachable from `v` (bounded walk, cycles visited once). */
export function countTensors(v: PyValue): number {
  let n = 0;
  const seen = new Set<object>();
  const todo: PyValue[] = [v];
  while (todo.length > 0) {
    const x = todo.pop()!;
    if (x === null || typeof x !== 'object' || x instanceof Uint8Array || seen.has(x)) continue;
    seen.add(x);
    if (isTensor(x)) n++;
    else if (x.kind === 'dict') for (const [, val] of x.entries) todo.push(val);
    else if (x.kind === 'list' || x.kind === 'tuple') todo.push(...x.items);
  }
  return n;
}

function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v !== 'object') return typeof v === 'string' ? 'a string' : `a ${typeof v}`;
  if (v instanceof Uint8Array) return 'bytes';
  if (v.kind === 'object') return `an object of ${globalName(v.global)}`;
  if (v.kind === 'global') return `the global ${globalName(v)}`;
  return `a ${v.kind}`;
}

/** The state dict's tensors, refusing anything in it that is not a tensor. */
function tensorsOf(d: PyDict, key: string, file: string): NamedTensor[] {
  const out: NamedTensor[] = [];
  const names = new Set<string>();
  for (const [k, v] of d.entries) {
    if (typeof k !== 'string')
      throw new AvgCkptError('unsafe-pickle', `state dict ${key || '(plain)'} has a key that is not a string`, {
        file,
      });
    if (!isTensor(v)) {
      const why =
        v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && v.kind === 'object'
          ? `refused: the state dict holds an object of ${globalName(v.global)}, not a tensor; nothing was executed`
          : `the state dict entry is ${describe(v)}, not a tensor`;
      throw new AvgCkptError('unsafe-pickle', why, { file, tensor: k });
    }
    if (names.has(k)) throw new AvgCkptError('duplicate-key', 'appears twice in the state dict', { file, tensor: k });
    names.add(k);
    out.push({ name: k, tensor: v.value });
  }
  return out;
}

function allTensors(d: PyDict): boolean {
  return d.entries.length > 0 && d.entries.every(([k, v]) => typeof k === 'string' && isTensor(v));
}

/** One line listing the top-level keys and how many tensors each holds. */
function keyListing(root: PyValue): string {
  if (!isDict(root)) return `the file holds ${describe(root)}, not a dict`;
  const parts = root.entries
    .slice(0, 40)
    .map(([k, v]) => `${typeof k === 'string' ? k : String(k)} (${countTensors(v)} tensors)`);
  if (root.entries.length > 40) parts.push(`... ${root.entries.length - 40} more`);
  return `top-level keys: ${parts.join(', ') || '(none)'}`;
}

/** Chooses the state dict of a loaded file; `key` is the user's dotted `--key`, if any. */
export function chooseStateDict(root: PyValue, file: string, key?: string): ChosenStateDict {
  if (key !== undefined && key !== '') {
    let v: PyValue | undefined = root;
    for (const part of key.split('.')) {
      v = isDict(v) ? entry(v, part) : undefined;
      if (v === undefined) {
        throw new AvgCkptError('no-state-dict', `has no entry "${key}" (--key); ${keyListing(root)}`, { file });
      }
    }
    if (!isDict(v))
      throw new AvgCkptError(
        'no-state-dict',
        `entry "${key}" (--key) is ${describe(v ?? null)}, not a state dict; ${keyListing(root)}`,
        { file },
      );
    return { key, tensors: tensorsOf(v, key, file) };
  }
  if (isDict(root) && allTensors(root)) return { key: '', tensors: tensorsOf(root, '', file) };
  if (isDict(root)) {
    for (const k of STATE_DICT_KEYS) {
      const v = entry(root, k);
      if (isDict(v) && countTensors(v) > 0) return { key: k, tensors: tensorsOf(v, k, file) };
    }
  }
  // a plain state dict with an object smuggled in is refused by name, not reported as "no state dict"
  if (isDict(root) && root.entries.some(([, v]) => isTensor(v))) tensorsOf(root, '', file);
  throw new AvgCkptError(
    'no-state-dict',
    `holds no state dict under ${STATE_DICT_KEYS.join(', ')}: pass --key; ${keyListing(root)}`,
    { file },
  );
}

/** An integer entry `step` or `global_step` at the top level (plainLM, Lightning), if any. */
export function stepEntry(root: PyValue): number | undefined {
  if (!isDict(root)) return undefined;
  for (const k of ['step', 'global_step']) {
    const v = entry(root, k);
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  }
  return undefined;
}
