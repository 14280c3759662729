/**
 * Charts as SVG, for people who look rather than read: vega-lite specs compiled to vega and
 * rendered headless (no canvas; vega estimates text widths), so the SVG is the same on every
 * machine.
 */
import type { TopLevelSpec } from 'vega-lite';
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
  return direction === 'min' && finite.length > 0 && finite.every((v) => v > 0) ? { type: 'log' as const, nice: false, padding: 8 } : { zero: false, nice: false, padding: 8 };
}

/** Metric vs step, one line per method, the target as a dashed rule and each method's first step at it as a dot. */
export function curveChartSpec(lines: readonly CurveLine[], metric: string, direction: Direction, target: Target, ttt: readonly TimeToTarget[]): TopLevelSpec {
  const rows = lines.flatMap((l) => l.points.map((p) => ({ method: l.name, step: p.step, value: p.metrics[metric] })));
  const order = lines.map((l) => l.name);
  const hits = ttt.filter((t) => t.step !== null).map((t) => ({ method: t.name, step: t.step, value: target.value }));
  const label = target.source === 'best-raw' ? `target: best raw ${metric} ${target.value.toPrecision(4)}` : `target: ${metric} ${target.value.toPrecision(4)}`;
  const x = { field: 'step', type: 'quantitative' as const, title: 'training step' };
  const y = { field: 'value', type: 'quantitative' as const, title: metric, scale: yScale(rows.map((r) => r.value), direction) };
  const color = { field: 'method', type: 'nominal' as const, title: 'method', sort: order };
  return {
    config: CONFIG,
    title: `${metric} along the run: raw model vs averages ending at each step`,
    width: 640,
    height: 360,
    layer: [
      { data: { values: rows }, mark: { type: 'line', strokeWidth: 2, clip: true }, encoding: { x, y, color } },
      { data: { values: [{ value: target.value, label }] }, mark: { type: 'rule', strokeDash: [6, 4], color: '#444' }, encoding: { y: { field: 'value', type: 'quantitative' } } },
      // Early in training the curves are on the worse side of the target: the label goes there, on the left.
      { data: { values: [{ value: target.value, label }] }, mark: { type: 'text', align: 'left', x: 4, ...(direction === 'min' ? { baseline: 'top', dy: 3 } : { baseline: 'bottom', dy: -3 }), color: '#444' }, encoding: { y: { field: 'value', type: 'quantitative' }, text: { field: 'label' } } },
      { data: { values: hits }, mark: { type: 'point', filled: true, size: 90, stroke: 'black', strokeWidth: 1, opacity: 1 }, encoding: { x, y: { field: 'value', type: 'quantitative' }, color } },
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
const CHARTED = FAMILIES.flatMap((f) => (f.chart === undefined ? [] : [{ method: f.method, param: f.param, title: f.chart.title, log2: f.chart.log2 ?? false }]));

/**
 * The sweep's metric vs window size and vs EMA decay (and power-EMA width), one panel per family
 * present; the newest raw checkpoint, the baseline, is a dashed rule in each panel.
 */
export function sweepChartSpec(candidates: readonly ScoredCandidate[], metric: string, direction: Direction): TopLevelSpec | undefined {
  const newestRaw = candidates.filter((c) => c.method === 'raw').sort((a, b) => Number(b.params.step) - Number(a.params.step))[0];
  const panels = CHARTED.map((f) => ({
    f,
    rows: candidates
      .filter((c) => c.method === f.method && typeof c.params[f.param] === 'number')
      .map((c) => ({ x: c.params[f.param] as number, value: c.metrics[metric], name: c.name })),
  })).filter((p) => p.rows.length > 0);
  if (panels.length === 0) return undefined;
  const all = panels.flatMap((p) => p.rows.map((r) => r.value)).concat(newestRaw === undefined ? [] : [newestRaw.metrics[metric]]);
  const y = { field: 'value', type: 'quantitative' as const, title: metric, scale: yScale(all, direction) };
  const baseline = newestRaw === undefined ? [] : [
    { data: { values: [{ value: newestRaw.metrics[metric], label: `raw step ${newestRaw.params.step}` }] }, mark: { type: 'rule', strokeDash: [6, 4], color: '#888' }, encoding: { y } },
    { data: { values: [{ value: newestRaw.metrics[metric], label: `raw step ${newestRaw.params.step}` }] }, mark: { type: 'text', align: 'right', baseline: 'bottom', dy: -3, x: 'width', color: '#666' }, encoding: { y, text: { field: 'label' } } },
  ];
  return {
    config: CONFIG,
    title: `${metric} of each candidate average (${direction === 'min' ? 'lower' : 'higher'} is better)`,
    hconcat: panels.map(({ f, rows }) => ({
      width: 300,
      height: 260,
      title: f.title,
      layer: [
        {
          data: { values: rows },
          mark: { type: 'line', point: { filled: true, size: 50 }, strokeWidth: 2 },
          encoding: {
            x: { field: 'x', type: 'quantitative', title: f.param, scale: xScale(f.log2, rows.map((r) => r.x)) },
            y,
          },
        },
        ...baseline,
      ],
    })),
    resolve: { scale: { y: 'shared' } },
  } as TopLevelSpec;
}
