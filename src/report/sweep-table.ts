/** What `sweep-window` prints: one row per candidate, the winner marked, the change against the baseline. */
import type { SweepReport } from '../analysis/sweep-report.js';
import { confidenceLines } from './margin-text.js';
import { unmappedNote } from './unmapped-note.js';

function fmt(x: number | undefined): string {
  return x === undefined ? '-' : Number.isFinite(x) ? x.toPrecision(6) : String(x);
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

/** Every metric any candidate has, in the order they first appear (a failed candidate has none). */
export function metricNames(r: SweepReport): string[] {
  return [...new Set(r.candidates.flatMap((c) => Object.keys(c.metrics)))];
}

/** The change of the ranking metric against the baseline: `-0.243 (-82.5%)`; '-' when either failed. */
export function changeAgainst(value: number | undefined, base: number | undefined): string {
  if (value === undefined || base === undefined) return '-';
  const d = value - base;
  const sign = d >= 0 ? '+' : '';
  return base === 0
    ? `${sign}${d.toPrecision(3)}`
    : `${sign}${d.toPrecision(3)} (${sign}${((100 * d) / Math.abs(base)).toFixed(1)}%)`;
}

/** The human table: candidate, steps covered, metrics, change of the ranking metric vs the baseline; failures listed below it. */
export function formatSweepTable(r: SweepReport): string {
  const metrics = metricNames(r);
  const base = r.candidates.find((c) => c.name === r.baseline)!.metrics[r.metric];
  const rows = r.candidates.map((c) => {
    const first = c.steps[0];
    const last = c.steps[c.steps.length - 1];
    const covered = c.steps.length === 1 ? `${first}` : `${first}..${last} (${c.steps.length})`;
    const change =
      c.failed !== undefined ? 'failed' : c.name === r.baseline ? 'baseline' : changeAgainst(c.metrics[r.metric], base);
    return [
      `${c.name === r.best ? '* ' : '  '}${c.name}${c.optimistic ? ' [optimistic]' : ''}`,
      covered,
      ...metrics.map((m) => fmt(c.metrics[m])),
      change,
    ];
  });
  const head = ['  candidate', 'steps', ...metrics, `change in ${r.metric}`];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const better = r.direction === 'max' ? 'higher' : 'lower';
  const failed = r.candidates.filter((c) => c.failed !== undefined).map((c) => `failed: ${c.name}: ${c.failed}`);
  const timing =
    r.setup_ms === undefined || r.ms_per_candidate === undefined
      ? []
      : [
          `time: setup ${seconds(r.setup_ms)}, ${seconds(r.ms_per_candidate)} per candidate (median of ${r.candidates.length})`,
        ];
  const unmapped = unmappedNote(r.unmapped);
  const best = `best: ${r.best} (${r.metric} ${fmt(r.candidates.find((c) => c.name === r.best)!.metrics[r.metric])}, ${better} is better; device ${r.device}, engine ${r.engine})`;
  return [
    line(head),
    ...rows.map(line),
    '',
    ...failed,
    ...(unmapped === undefined ? [] : [unmapped]),
    best,
    ...confidenceLines(r),
    ...timing,
  ].join('\n');
}
