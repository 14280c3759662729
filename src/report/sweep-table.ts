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

/** The human table: candidate, steps covered, metrics, change of the ranking metric vs the baseline. */
export function formatSweepTable(r: SweepReport): string {
  const metrics = Object.keys(r.candidates[0]?.metrics ?? {});
  const base = r.candidates.find((c) => c.name === r.baseline)!.metrics[r.metric];
  const rows = r.candidates.map((c) => {
    const first = c.steps[0];
    const last = c.steps[c.steps.length - 1];
    const covered = c.steps.length === 1 ? `${first}` : `${first}..${last} (${c.steps.length})`;
    const d = c.metrics[r.metric] - base;
    const change = c.name === r.baseline ? 'baseline' : `${d >= 0 ? '+' : ''}${d.toPrecision(3)}${base !== 0 ? ` (${d >= 0 ? '+' : ''}${((100 * d) / Math.abs(base)).toFixed(1)}%)` : ''}`;
    return [`${c.name === r.best ? '* ' : '  '}${c.name}${c.optimistic ? ' [optimistic]' : ''}`, covered, ...metrics.map((m) => fmt(c.metrics[m])), change];
  });
  const head = ['  candidate', 'steps', ...metrics, `change in ${r.metric}`];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const better = r.direction === 'max' ? 'higher' : 'lower';
  const timing = r.setup_ms === undefined || r.ms_per_candidate === undefined ? [] : [`time: setup ${seconds(r.setup_ms)}, ${seconds(r.ms_per_candidate)} per candidate (median of ${r.candidates.length})`];
  const unmapped = unmappedNote(r.unmapped);
  const best = `best: ${r.best} (${r.metric} ${fmt(r.candidates.find((c) => c.name === r.best)!.metrics[r.metric])}, ${better} is better; device ${r.device}, engine ${r.engine})`;
  return [line(head), ...rows.map(line), '', ...(unmapped === undefined ? [] : [unmapped]), best, ...confidenceLines(r), ...timing].join('\n');
}
