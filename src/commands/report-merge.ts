/**
 * `report merge`: the part reports of one sweep split with `sweep-window --candidates-part I/N`
 * ranked together, as if one process had scored every candidate. Every part must be there, once,
 * for the same checkpoints, grid and metric; a missing or foreign part is named.
 */
import { median, type CandidateResult, type SweepReport } from '../analysis/sweep-report.js';
import { AvgCkptError } from '../errors.js';
import type { Metrics } from '../eval/metrics.js';
import { readWhole, storageError } from '../io/storage/storage.js';

async function readPart(path: string): Promise<SweepReport> {
  let r: SweepReport;
  try {
    r = JSON.parse(new TextDecoder().decode(await readWhole(path))) as SweepReport;
  } catch (e) {
    if (e instanceof SyntaxError)
      throw new AvgCkptError('usage', `is not a sweep report (${e.message})`, { file: path });
    throw storageError(path, e, 'read');
  }
  if (r.part === undefined)
    throw new AvgCkptError('usage', 'is a whole sweep, not a part of one (made without --candidates-part)', {
      file: path,
    });
  return r;
}

/** What must agree between the parts of one sweep. */
function sweepOf(r: SweepReport): string {
  return JSON.stringify([r.metric, r.direction, r.checkpoints, r.part?.count, r.part?.of, r.holdout ?? null]);
}

/** Strictly better on the ranking metric (the choosing rows' value under --holdout); NaN and failed candidates rank last. */
function better(r: SweepReport, a: CandidateResult, b: CandidateResult): boolean {
  const x = (a.choice_metrics ?? a.metrics)[r.metric as keyof Metrics] as number | undefined;
  const y = (b.choice_metrics ?? b.metrics)[r.metric as keyof Metrics] as number | undefined;
  if (x === undefined || Number.isNaN(x)) return false;
  if (y === undefined || Number.isNaN(y)) return true;
  return r.direction === 'max' ? x > y : x < y;
}

export async function mergeSweepReports(paths: readonly string[]): Promise<SweepReport> {
  if (paths.length === 0) throw new AvgCkptError('usage', 'name the part reports to merge (part-*.json)');
  const parts = await Promise.all(paths.map(readPart));
  const first = parts[0];
  const { count, of } = first.part!;
  const byIndex = new Map<number, string>();
  for (const [k, r] of parts.entries()) {
    if (sweepOf(r) !== sweepOf(first)) {
      throw new AvgCkptError(
        'stale-part',
        `is part of another sweep than ${paths[0]} (other checkpoints, metric or number of parts)`,
        { file: paths[k] },
      );
    }
    const twin = byIndex.get(r.part!.index);
    if (twin !== undefined)
      throw new AvgCkptError('usage', `is part ${r.part!.index} of ${count}, like ${twin}: name each part once`, {
        file: paths[k],
      });
    byIndex.set(r.part!.index, paths[k]);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) {
    throw new AvgCkptError(
      'missing-part',
      `part${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${count} ${missing.length > 1 ? 'are' : 'is'} missing: run sweep-window --candidates-part I/${count} for ${missing.length > 1 ? 'them' : 'it'}`,
    );
  }
  const slots: CandidateResult[] = new Array<CandidateResult>(of);
  for (const r of parts) r.part!.candidates.forEach((i, k) => (slots[i] = r.candidates[k]));
  const candidates = Array.from({ length: of }, (_, i) => {
    if (slots[i] === undefined)
      throw new AvgCkptError('stale-part', `candidate ${i} of ${of} is in no part`, { file: paths[0] });
    return slots[i];
  });
  let best = 0;
  for (let i = 1; i < candidates.length; i++) if (better(first, candidates[i], candidates[best])) best = i;
  const { part: _part, margin: _margin, written: _written, ms_per_candidate: _ms, ...shared } = first;
  const timed = candidates.flatMap((c) => (c.ms === undefined ? [] : [c.ms]));
  return {
    ...shared,
    setup_ms: Math.max(...parts.map((r) => r.setup_ms ?? 0)),
    ...(timed.length > 0 ? { ms_per_candidate: Math.round(median(timed)) } : {}),
    candidates,
    baseline: candidates[0].name,
    best: candidates[best].name,
  };
}
