/**
 * The metrics an evaluation command reports: the last non-empty line of its stdout, either a
 * JSON object (its number fields are the metrics) or a bare number (the value of the ranking
 * metric). Python's `json.dumps` writes NaN and Infinity unquoted: those are read as numbers,
 * so a diverged candidate ranks last instead of failing.
 */
import type { Metrics } from './metrics.js';

export type MetricLine = { readonly metrics: Metrics } | { readonly problem: string };

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const NON_FINITE = /^([-+]?)(nan|inf|infinity)$/i;
/** An unquoted NaN / Infinity in value position, as Python writes them. */
const PY_NON_FINITE = /([:,[]\s*)(-?Infinity|NaN)(?=\s*[,}\]])/g;

function bareNumber(s: string): number | undefined {
  if (NUMBER.test(s)) return Number(s);
  const m = NON_FINITE.exec(s);
  if (m === null) return undefined;
  return m[2].toLowerCase() === 'nan' ? NaN : m[1] === '-' ? -Infinity : Infinity;
}

function shown(line: string): string {
  return line.length > 80 ? `'${line.slice(0, 77)}...'` : `'${line}'`;
}

function parseObject(line: string): Record<string, unknown> | undefined {
  for (const text of [line, line.replace(PY_NON_FINITE, '$1"\\u0000$2"')]) {
    try {
      const v: unknown = JSON.parse(text);
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      // not JSON as written: try once more with Python's NaN / Infinity quoted
    }
  }
  return undefined;
}

/** Reads the metrics from a command's stdout; `rank` is the metric that must be there. */
export function readMetricLine(stdout: string, rank: string): MetricLine {
  const line = stdout
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .pop();
  if (line === undefined)
    return { problem: 'printed nothing on stdout (expected a JSON object of metrics, or a number, as its last line)' };
  const bare = bareNumber(line);
  if (bare !== undefined) return { metrics: { [rank]: bare } };
  if (!line.startsWith('{'))
    return { problem: `printed no metric: its last line is ${shown(line)}, not a JSON object or a number` };
  const obj = parseObject(line);
  if (obj === undefined) return { problem: `printed a last line that is not a valid JSON object: ${shown(line)}` };
  const metrics: Metrics = {};
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'number') metrics[k] = v;
    else if (typeof v === 'string' && v.startsWith('\u0000')) metrics[k] = bareNumber(v.slice(1))!;
  }
  if (!(rank in metrics)) {
    const has = Object.keys(metrics);
    const what =
      obj[rank] !== undefined
        ? `printed "${rank}": ${JSON.stringify(obj[rank])}, not a number`
        : `printed no "${rank}"`;
    return {
      problem: `${what} (${has.length > 0 ? `its metrics: ${has.join(', ')}` : 'no number fields'}); name the ranking metric with --metric`,
    };
  }
  return { metrics };
}
