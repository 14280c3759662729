/** What `curve` shows: the summary table and sentences, the chart, and the HTML page. */
import type { CurveReport } from '../analysis/curve.js';
import { curveChartSpec, renderSvg } from './charts.js';
import { formatMeasured, formatNumber, htmlPage, measured, type Cell } from './html.js';
import { bootstrapLine, marginFigures, marginSide, marginVerdict, noMarginLine } from './margin-text.js';
import { describeTimeToTarget } from './time-to-target.js';
import { unmappedNote } from './unmapped-note.js';
import { writeReportFile } from './write.js';

function best(values: readonly { step: number; value: number }[], direction: 'min' | 'max') {
  return values.reduce((a, b) =>
    Number.isNaN(a.value) || (direction === 'min' ? b.value < a.value : b.value > a.value) ? b : a,
  );
}

function measuredOr(x: number | undefined): Cell {
  return x === undefined ? '-' : measured(x);
}

/** One row per method: its value at the end of the run, its best value, and its time to target. */
function summaryRows(r: CurveReport): Cell[][] {
  return r.methods.map((m) => {
    const values = m.points.map((p) => ({ step: p.step, value: p.metrics[r.metric] }));
    const end = values[values.length - 1];
    const top = best(values, r.direction);
    const t = r.time_to_target.find((x) => x.name === m.name);
    const reach = m.method === 'raw' ? (r.time_to_target[0]?.baseline_step ?? null) : (t?.step ?? null);
    const saved = t?.share_saved;
    return [
      m.name,
      measured(end.value),
      measured(top.value),
      top.step,
      reach === null ? 'never' : reach,
      m.method === 'raw' ? 'baseline' : saved === null || saved === undefined ? '-' : `${Math.round(saved * 100)}%`,
    ];
  });
}

function head(r: CurveReport): string[] {
  return [
    'method',
    `${r.metric} at step ${r.steps[r.steps.length - 1]}`,
    `best ${r.metric}`,
    'at step',
    'reaches target at',
    'steps saved',
  ];
}

/** The time-to-target sentences, one per average. */
export function curveSentences(r: CurveReport): string[] {
  return r.time_to_target.map((t) => describeTimeToTarget(t, r.metric, r.target));
}

/**
 * How sure the curve is: the margin at the last step that has one, how many steps' best average
 * is better than, indistinguishable from or worse than the raw checkpoint, and how it was computed.
 */
export function curveMarginLines(r: CurveReport): string[] {
  const m = r.margin;
  if (m === undefined) return [noMarginLine(r.metric, r.engine)];
  const last = m.points[m.points.length - 1];
  const count = (side: ReturnType<typeof marginSide>) =>
    m.points.filter((p) => marginSide(p, r.direction) === side).length;
  return [
    `margin at step ${last.step}: ${last.best} over ${last.against}: ${marginFigures(m, last)}: ` +
      marginVerdict(last, r.direction),
    `the best average at each step is better than the raw checkpoint at ${count('better')} of the ` +
      `${m.points.length} steps with a margin, not distinguishable at ${count('same')}, worse at ${count('worse')}`,
    bootstrapLine(m),
  ];
}

/** The text `curve` prints on stdout. */
export function formatCurveSummary(r: CurveReport): string {
  const rows = summaryRows(r).map((row) =>
    row.map((c) => (typeof c === 'object' ? formatMeasured(c.measured) : typeof c === 'number' ? formatNumber(c) : c)),
  );
  const h = head(r);
  const widths = h.map((x, i) => Math.max(x.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const what =
    r.target.source === 'best-raw'
      ? `target: the best raw ${r.metric}, ${formatMeasured(r.target.value)}`
      : `target: ${r.metric} ${formatMeasured(r.target.value)}`;
  const unmapped = unmappedNote(r.unmapped);
  return [
    line(h),
    ...rows.map(line),
    '',
    `${what} (${r.direction === 'min' ? 'lower' : 'higher'} is better; ${r.steps.length} steps evaluated, device ${r.device}, engine ${r.engine})`,
    ...curveSentences(r),
    ...curveMarginLines(r),
    ...(unmapped === undefined ? [] : [unmapped]),
  ].join('\n');
}

function curveChart(r: CurveReport): Promise<string> {
  return renderSvg(curveChartSpec(r.methods, r.metric, r.direction, r.target, r.time_to_target));
}

function curveHtml(r: CurveReport, svg: string, command: string, run: string): string {
  const names = r.methods.map((m) => m.name);
  const marginAt = new Map(r.margin?.points.map((p) => [p.step, p]));
  const marginHead =
    r.margin === undefined
      ? []
      : ['best average', 'margin over raw', `${Math.round(r.margin.level * 100)}% interval`, 'verdict'];
  const marginCells = (step: number): Cell[] => {
    if (r.margin === undefined) return [];
    const p = marginAt.get(step);
    if (p === undefined) return ['-', '-', '-', '-'];
    return [
      p.best,
      measured(p.margin),
      `[${formatMeasured(p.low)}, ${formatMeasured(p.high)}]`,
      marginVerdict(p, r.direction),
    ];
  };
  const byStep = r.steps.map(
    (s) =>
      [
        s,
        ...r.methods.map((m) => measuredOr(m.points.find((p) => p.step === s)?.metrics[r.metric])),
        ...marginCells(s),
      ] as Cell[],
  );
  return htmlPage(
    `avg-ckpt curve: ${run}`,
    `The raw model and the averages ending at each checkpoint, scored on validation ${r.metric}.`,
    [
      {
        title: 'Time to target',
        text: [...curveSentences(r), ...(r.unmapped === undefined ? [] : [unmappedNote(r.unmapped)!])],
        table: { head: head(r), rows: summaryRows(r) },
      },
      { title: `${r.metric} along the run`, svg },
      { title: 'How sure: the best average against the raw checkpoint at each step', text: curveMarginLines(r) },
      { title: `${r.metric} at each step`, table: { head: ['step', ...names, ...marginHead], rows: byStep } },
      {
        title: 'Reproduce it',
        text: [`Scored on ${r.device} with the ${r.engine} engine. This command makes this report again:`],
        code: command,
      },
    ],
  );
}

/** Writes what `--plot` and `--html` ask for; returns the paths written. */
export async function writeCurveOutputs(
  r: CurveReport,
  opts: { plot?: string; html?: string; command: string; run: string },
): Promise<string[]> {
  if (opts.plot === undefined && opts.html === undefined) return [];
  const svg = await curveChart(r);
  const written: string[] = [];
  if (opts.plot !== undefined) {
    await writeReportFile(opts.plot, svg);
    written.push(opts.plot);
  }
  if (opts.html !== undefined) {
    await writeReportFile(opts.html, curveHtml(r, svg, opts.command, opts.run));
    written.push(opts.html);
  }
  return written;
}
