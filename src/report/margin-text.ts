/** The sentences that say how sure a sweep's pick is: the bootstrap margins, the optimistic soups, the holdout. */
import type { MarginInterval } from '../analysis/bootstrap.js';
import type { SweepReport } from '../analysis/sweep-report.js';
import type { Direction } from '../analysis/time-to-target.js';

function signed(x: number): string {
  return `${x > 0 ? '+' : ''}${x.toPrecision(3)}`;
}

/** How the bootstrap was run, as `SweepMargin` and `CurveMargin` both record it. */
interface MarginSettings {
  readonly metric: string;
  readonly level: number;
}

/** Which side of `against` an interval lies on: better, worse, or holding zero (`same`: not distinguishable). */
export function marginSide(m: MarginInterval, direction: Direction): 'better' | 'worse' | 'same' {
  if (!m.distinguishable) return 'same';
  return (direction === 'min' ? m.margin < 0 : m.margin > 0) ? 'better' : 'worse';
}

/** "better than raw-600 on this data", "not distinguishable from raw-600 on this data" (or "on the held-out rows"). */
export function marginVerdict(m: MarginInterval, direction: Direction, heldOut = false): string {
  const side = marginSide(m, direction);
  if (side === 'same') return `not distinguishable from ${m.against} on this data`;
  return side === 'better'
    ? `better than ${m.against} on this data`
    : `worse than ${m.against} ${heldOut ? 'on the held-out rows' : 'on this data'}`;
}

/** "loss -0.000278, 95% interval [-0.000910, +0.000341]" */
export function marginFigures(s: MarginSettings, m: MarginInterval): string {
  const level = Math.round(s.level * 100);
  return `${s.metric} ${signed(m.margin)}, ${level}% interval [${signed(m.low)}, ${signed(m.high)}]`;
}

/** "margin over raw-600 (baseline): loss -0.000278, 95% interval [-0.000910, +0.000341]: not distinguishable from raw-600 on this data" */
function marginSentence(r: SweepReport, m: MarginInterval, role: string): string {
  const verdict = marginVerdict(m, r.direction, r.holdout !== undefined);
  return `margin over ${m.against} (${role}): ${marginFigures(r.margin!, m)}: ${verdict}`;
}

/** "(paired bootstrap: 1000 resamples of the 500 validation rows, seed 1)" */
export function bootstrapLine(m: { resamples: number; rows: number; seed: number }, heldOut = false): string {
  const rows = `${m.rows} ${heldOut ? 'held-out ' : ''}validation rows`;
  return `(paired bootstrap: ${m.resamples} resamples of the ${rows}, seed ${m.seed})`;
}

/** Why a report has no margin: the scorer gave no per-row values. */
export function noMarginLine(metric: string, engine: string): string {
  return engine === 'command'
    ? 'no margin interval: an evaluation command (--eval-cmd) reports no per-row values'
    : `no margin interval: ${metric} has no per-row values (a graph output that is one number per batch)`;
}

/** One line per fact, for the table and the page: the margins, how they were computed, the holdout, the optimistic candidates. */
export function confidenceLines(r: SweepReport): string[] {
  const lines: string[] = [];
  const m = r.margin;
  if (m !== undefined) {
    const same = m.over_baseline !== undefined && m.over_runner_up?.against === m.over_baseline.against;
    if (m.over_baseline) lines.push(marginSentence(r, m.over_baseline, same ? 'baseline and runner-up' : 'baseline'));
    if (m.over_runner_up && !same) lines.push(marginSentence(r, m.over_runner_up, 'runner-up'));
    lines.push(bootstrapLine(m, r.holdout !== undefined));
  } else {
    lines.push(noMarginLine(r.metric, r.engine));
  }
  if (r.holdout)
    lines.push(
      `holdout: the winner was chosen on ${r.holdout.choose_rows} rows; every number above is on the other ${r.holdout.report_rows} (--holdout ${r.holdout.fraction})`,
    );
  for (const c of r.candidates.filter((x) => x.optimistic)) {
    lines.push(
      `[optimistic] ${c.name} chose its members on the same rows it is scored on, so its score flatters it; --holdout F chooses and reports on different rows`,
    );
  }
  return lines;
}
