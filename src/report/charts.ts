/**
 * Charts as SVG, for people who look rather than read: vega-lite specs compiled to vega and
 * rendered headless (no canvas; vega estimates text widths), so the SVG is the same on every
 * machine.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { HoldoutSplit } from '../analysis/sweep-report.js';
import type { Direction, Target, TimeToTarget } from '../analysis/time-to-target.js';
import { FAMILIES } from '../recipes/registry.js';

/** What a chart needs of one evaluated candidate (a sweep-window candidate has these fields). */
export interface ScoredCandidate {
  readonly name: string;
  readonly method: string;
  readonly params: Readonly<Record<string, number | string>>;
  readonly metrics: Readonly<Record<string, number>>;
}

/** One method's curve: its metrics at each evaluated step. */
export interface CurveLine {
  readonly name: string;
  readonly points: readonly { readonly step: number; readonly metrics: Readonly<Record<string, number>> }[];
}

const CONFIG = {
  font: 'Helvetica, Arial, sans-serif',
  background: 'white',
  padding: 12,
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  title: { fontSize: 14, anchor: 'start' as const },
};

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // loaded on first use: vega takes longer to import than most commands take to run
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** A log axis spreads a loss that falls by orders of magnitude; only for positive minimized metrics. */
function yScale(values: readonly number[], direction: Direction) {
  const finite = values.filter(Number.isFinite);
  return direction === 'min' && finite.length > 0 && finite.every((v) => v > 0)
    ? { type: 'log' as const, nice: false, padding: 8 }
    : { zero: false, nice: false, padding: 8 };
}

/** Metric vs step, one line per method, the target as a dashed rule and each method's first step at it as a dot. */
export function curveChartSpec(
  lines: readonly CurveLine[],
  metric: string,
  direction: Direction,
  target: Target,
  ttt: readonly TimeToTarget[],
): TopLevelSpec {
  const rows = lines.flatMap((l) => l.points.map((p) => ({ method: l.name, step: p.step, value: p.metrics[metric] })));
  const order = lines.map((l) => l.name);
  // the raw model's own first step at the target is marked too: the step the averages are measured against
  const rawStep = ttt.find((t) => t.baseline_step !== null)?.baseline_step ?? null;
  const rawHit =
    rawStep === null || order.length === 0
      ? []
      : [{ method: order[0], step: rawStep, value: target.value, label: `${order[0]}: step ${rawStep}` }];
  const hits = [
    ...rawHit,
    ...ttt
      .filter((t) => t.step !== null)
      .map((t) => ({ method: t.name, step: t.step, value: target.value, label: `${t.name}: step ${t.step}` })),
  ];
  const label =
    target.source === 'best-raw'
      ? `target: best raw ${metric} ${target.value.toPrecision(4)}`
      : `target: ${metric} ${target.value.toPrecision(4)}`;
  const x = { field: 'step', type: 'quantitative' as const, title: 'training step' };
  const xMin = Math.min(...rows.map((r) => r.step));
  const xMax = Math.max(...rows.map((r) => r.step));
  const y = {
    field: 'value',
    type: 'quantitative' as const,
    title: metric,
    scale: yScale(
      rows.map((r) => r.value),
      direction,
    ),
  };
  const color = { field: 'method', type: 'nominal' as const, title: 'method', sort: order };
  return {
    config: CONFIG,
    title: `${metric} along the run: raw model vs averages ending at each step`,
    width: 640,
    height: 360,
    layer: [
      { data: { values: rows }, mark: { type: 'line', strokeWidth: 2, clip: true }, encoding: { x, y, color } },
      {
        data: { values: [{ value: target.value, label }] },
        mark: { type: 'rule', strokeDash: [6, 4], color: '#444' },
        encoding: { y: { field: 'value', type: 'quantitative' } },
      },
      // Early in training the curves are on the worse side of the target: the label goes there, on the left.
      {
        data: { values: [{ value: target.value, label }] },
        mark: {
          type: 'text',
          align: 'left',
          x: 4,
          ...(direction === 'min' ? { baseline: 'top', dy: 3 } : { baseline: 'bottom', dy: -3 }),
          color: '#444',
        },
        encoding: { y: { field: 'value', type: 'quantitative' }, text: { field: 'label' } },
      },
      {
        data: { values: hits },
        mark: { type: 'point', filled: true, size: 90, stroke: 'black', strokeWidth: 1, opacity: 1 },
        encoding: { x, y: { field: 'value', type: 'quantitative' }, color },
      },
      // one label a row under (or over) the target, so that hits a few steps apart stay readable
      ...hits.map((h, i) => ({
        data: { values: [h] },
        mark: {
          type: 'text',
          align: (h.step ?? 0) > (xMin + xMax) / 2 ? 'right' : 'left',
          dx: (h.step ?? 0) > (xMin + xMax) / 2 ? -7 : 7,
          dy: (direction === 'min' ? 1 : -1) * (14 + 12 * i),
          fontSize: 10,
          color: '#333',
        },
        encoding: { x, y: { field: 'value', type: 'quantitative' }, text: { field: 'label' } },
      })),
    ],
    resolve: { scale: { y: 'shared' } },
  } as TopLevelSpec;
}

/** Window sizes swept as powers of two (1, 2, 4, ... 64) read best on a log2 axis. */
function xScale(log2: boolean, xs: readonly number[]) {
  const spread = Math.max(...xs) / Math.min(...xs);
  return log2 && xs.length > 2 && spread >= 16 ? { type: 'log' as const, base: 2 } : { zero: false };
}

/** The sweep families a chart shows (the registry's families with a chart panel), each against its own parameter. */
const CHARTED = FAMILIES.flatMap((f) =>
  f.chart === undefined
    ? []
    : [{ method: f.method, param: f.param, title: f.chart.title, log2: f.chart.log2 ?? false }],
);

const WINNER = '#d62728';
const BASELINE = '#888';
const SINGLE = '#9467bd';

/** How far apart the plotted values are, as a share of the baseline: said on the chart, so a 1% spread filling the panel is not read as a big one. */
function spreadNote(values: readonly number[], baseline: number | undefined, metric: string): string {
  const finite = values.filter(Number.isFinite);
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const ref = Math.abs(baseline ?? (lo + hi) / 2);
  const share = ref === 0 ? undefined : (100 * (hi - lo)) / ref;
  const span = `${metric} from ${lo.toPrecision(4)} to ${hi.toPrecision(4)}`;
  if (share === undefined) return `the y-axis spans ${span}`;
  const pct = share < 10 ? share.toFixed(1) : share.toFixed(0);
  return `the y-axis spans ${span}: ${pct}% of the baseline${share < 5 ? ', so small differences look large' : ''}`;
}

/**
 * The sweep's metric against each family's parameter (LAWA window, EMA decays, power-EMA width,
 * uniform start), one panel per family scored. Candidates without a parameter (the newest raw
 * checkpoint, the baseline; a greedy soup) are labelled rules across every panel, inside the plot
 * area; the winner is a red ring (or a red rule). A subtitle says how wide the y-axis really is.
 * With `holdout` the values drawn are on the held-out rows and the winner was chosen on the
 * others, so it need not be the best point drawn: the title, axis and labels say so.
 */
export function sweepChartSpec(
  candidates: readonly ScoredCandidate[],
  metric: string,
  direction: Direction,
  best?: string,
  holdout?: Pick<HoldoutSplit, 'choose_rows' | 'report_rows'>,
): TopLevelSpec | undefined {
  const newestRaw = candidates
    .filter((c) => c.method === 'raw')
    .sort((a, b) => Number(b.params.step) - Number(a.params.step))[0];
  const inPanel = (c: ScoredCandidate) =>
    CHARTED.some((f) => c.method === f.method && typeof c.params[f.param] === 'number');
  const panels = CHARTED.map((f) => ({
    f,
    rows: candidates
      .filter((c) => c.method === f.method && typeof c.params[f.param] === 'number')
      .map((c) => ({ x: c.params[f.param] as number, value: c.metrics[metric], name: c.name, best: c.name === best })),
  })).filter((p) => p.rows.length > 0);
  if (panels.length === 0) return undefined;
  // the baseline and every candidate without a parameter (greedy soups): one rule each
  const rules = [
    ...(newestRaw === undefined
      ? []
      : [
          {
            value: newestRaw.metrics[metric],
            label: `baseline: raw step ${newestRaw.params.step}`,
            color: BASELINE,
            best: newestRaw.name === best,
          },
        ]),
    ...candidates
      .filter((c) => c.method !== 'raw' && !inPanel(c))
      .map((c) => ({
        value: c.metrics[metric],
        label:
          c.method !== 'greedy-soup'
            ? c.name
            : `${c.name} (${holdout ? 'members chosen on the other rows' : 'chosen on these rows'})`,
        color: SINGLE,
        best: c.name === best,
      })),
  ].filter((r) => Number.isFinite(r.value));
  const all = panels
    .flatMap((p) => p.rows.map((r) => r.value))
    .concat(rules.map((r) => r.value))
    .filter(Number.isFinite);
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  const pad = (hi - lo || Math.abs(hi) || 1) * 0.1;
  const log = yScale(all, direction).type === 'log';
  // an explicit domain holds every rule inside the plot area, with room for the labels
  const domain = log ? [lo / (hi / lo) ** 0.1, hi * (hi / lo) ** 0.1] : [lo - pad, hi + pad];
  const y = {
    field: 'value',
    type: 'quantitative' as const,
    title: holdout ? `${metric} (held-out rows)` : metric,
    scale: { ...(log ? { type: 'log' as const } : { zero: false }), domain, nice: false },
  };
  const ruleLayers = rules.flatMap((r) => [
    {
      data: { values: [r] },
      mark: {
        type: 'rule',
        strokeDash: r.best ? [] : [6, 4],
        color: r.best ? WINNER : r.color,
        strokeWidth: r.best ? 2.5 : 1.5,
      },
      encoding: { y },
    },
    // the baseline is labelled at the right, the others at the left, so that close values do not print over each other
    {
      data: { values: [{ ...r, label: r.best ? `${r.label}: best` : r.label }] },
      mark: {
        type: 'text',
        ...(r.color === BASELINE
          ? { align: 'right', x: 'width', dx: -4, baseline: 'bottom', dy: -3 }
          : { align: 'left', x: 4, baseline: 'top', dy: 3 }),
        color: r.best ? WINNER : '#555',
        fontWeight: r.best ? 'bold' : 'normal',
      },
      encoding: { y, text: { field: 'label' } },
    },
  ]);
  const better = direction === 'min' ? 'lower' : 'higher';
  return {
    config: CONFIG,
    title: {
      text: holdout
        ? `${metric} of each candidate average on the ${holdout.report_rows} held-out validation rows ` +
          `(${better} is better)`
        : `${metric} of each candidate average (${better} is better)`,
      subtitle: [
        spreadNote(all, newestRaw?.metrics[metric], metric),
        ...(best === undefined
          ? []
          : holdout
            ? [
                `best: ${best} (red), chosen on the other ${holdout.choose_rows} rows (--holdout): ` +
                  'it need not be the best point here',
              ]
            : [`best: ${best} (red)`]),
      ],
      subtitleColor: '#555',
    },
    // two panels a row: five families side by side would shrink each to a thumbnail on the page
    columns: Math.min(2, panels.length),
    concat: panels.map(({ f, rows }) => {
      const x = {
        field: 'x',
        type: 'quantitative' as const,
        title: f.param,
        scale: xScale(
          f.log2,
          rows.map((r) => r.x),
        ),
      };
      return {
        width: 380,
        height: 260,
        title: f.title,
        layer: [
          ...ruleLayers,
          {
            data: { values: rows },
            mark: { type: 'line', point: { filled: true, size: 50 }, strokeWidth: 2 },
            encoding: { x, y },
          },
          {
            data: { values: rows.filter((r) => r.best) },
            mark: { type: 'point', shape: 'circle', size: 260, strokeWidth: 3, color: WINNER, filled: false },
            encoding: { x, y },
          },
          {
            data: { values: rows.filter((r) => r.best) },
            mark: { type: 'text', dy: -16, color: WINNER, fontWeight: 'bold' },
            encoding: { x, y, text: { value: 'best' } },
          },
        ],
      };
    }),
    resolve: { scale: { y: 'shared' } },
  } as TopLevelSpec;
}
