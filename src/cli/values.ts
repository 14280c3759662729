/** The values users type into options, parsed: sizes, number lists, NAME=FILE pairs, dtype names. */
import { AvgCkptError } from '../errors.js';
import { OUTPUT_DTYPES, type WritableFloat } from '../io/dtype.js';

/** The dtype for a `--dtype` word (validated by yargs' choices). */
export function outputDtype(word: string | undefined): WritableFloat | undefined {
  return word === undefined ? undefined : OUTPUT_DTYPES[word];
}

/** Parses `5GB`, `500MB`, `2GiB` or a byte count given to `--flag`. */
export function parseSize(flag: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(text);
  if (!m) throw new AvgCkptError('usage', `--${flag}: "${text}" is not a size (e.g. 5GB, 500MB, 2GiB)`);
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const pow = { '': 0, k: 1, m: 2, g: 3, t: 4 }[unit.replace('i', '')] ?? 0;
  const bytes = Math.floor(Number(m[1]) * (unit.endsWith('i') ? 1024 : 1000) ** pow);
  if (!(bytes > 0)) throw new AvgCkptError('usage', `--${flag} must be positive`);
  return bytes;
}

/** A whole number >= 1 given to `--flag`, or undefined. */
export function positiveInteger(flag: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1) throw new AvgCkptError('usage', `--${flag} takes a whole number >= 1, got ${v}`);
  return v;
}

/** `1,2,4` or repeated flags -> numbers. */
export function numberList(flag: string, v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const items = (Array.isArray(v) ? v : [v])
    .flatMap((x) => String(x).split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const nums = items.map(Number);
  if (nums.some((n) => !Number.isFinite(n)))
    throw new AvgCkptError('usage', `--${flag} takes numbers separated by commas, got '${items.join(',')}'`);
  return nums;
}

/** `NAME=FILE` pairs. */
export function inputPairs(v: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of v ?? []) {
    const at = item.indexOf('=');
    if (at <= 0) throw new AvgCkptError('usage', `--input takes NAME=FILE, got '${item}'`);
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
}
