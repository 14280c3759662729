/** The sentences that say how sure a sweep's pick is: the bootstrap margins, the optimistic soups, the holdout. */
import type { MarginInterval } from '../analysis/bootstrap.js';
import type { SweepReport } from '../analysis/sweep-report.js';

function signed(x: number): string {
  return `${x > 0 ? '+' : ''}${x.toPrecision(3)}`;
}

/** "margin over raw-600 (baseline): loss -0.000278, 95% interval [-0.000910, +0.000341]: not distinguishable from raw-600 on this data" */
function marginSentence(r: SweepReport, m: MarginInterval, role: string): string {
  const margin = r.margin!;
  const better = r.direction === 'min' ? m.margin < 0 : m.margin > 0;
  const verdict = !m.distinguishable
    ? `not distinguishable from ${m.against} on this data`
    : better
      ? `better than ${m.against} on this data`
      : `worse than ${m.against} on the held-out rows`;
  return `margin over ${m.against} (${role}): ${margin.metric} ${signed(m.margin)}, ${Math.round(margin.level * 100)}% interval [${signed(m.low)}, ${signed(m.high)}]: ${verdict}`;
}

/** One line per fact, for the table and the page: the margins, how they were computed, the holdout, the optimistic candidates. */
export function confidenceLines(r: SweepReport): string[] {
  const lines: string[] = [];
  const m = r.margin;
  if (m !== undefined) {
    const same = m.over_baseline !== undefined && m.over_runner_up?.against === m.over_baseline.against;
    if (m.over_baseline) lines.push(marginSentence(r, m.over_baseline, same ? 'baseline and runner-up' : 'baseline'));
    if (m.over_runner_up && !same) lines.push(marginSentence(r, m.over_runner_up, 'runner-up'));
    lines.push(
      `(paired bootstrap: ${m.resamples} resamples of the ${m.rows} ${r.holdout ? 'held-out ' : ''}validation rows, seed ${m.seed})`,
    );
  } else {
    lines.push(`no margin interval: ${r.metric} has no per-row values (a graph output that is one number per batch)`);
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
