/**
 * One self-contained HTML file per report: inline CSS and SVG, no scripts, no links out, so it
 * can be mailed or attached to a pull request and opened anywhere.
 */
import { VERSION } from '../version.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A measured value (a metric): always six significant digits, so a column reads evenly (1.00000 next to 0.994000). */
export interface Measured {
  readonly measured: number;
}

export function measured(x: number): Measured {
  return { measured: x };
}

/** A cell: plain text (escaped), a count or step (right-aligned, as is), or a measured value. */
export type Cell = string | number | Measured;

export interface Table {
  readonly head: readonly string[];
  readonly rows: readonly (readonly Cell[])[];
  /** Row indexes to highlight (the winner). */
  readonly mark?: readonly number[];
}

export interface Section {
  readonly title: string;
  /** Paragraphs of plain text. */
  readonly text?: readonly string[];
  readonly table?: Table;
  /** An SVG document from `renderSvg`, inlined as is. */
  readonly svg?: string;
  /** A shell command, shown as code. */
  readonly code?: string;
}

const CSS = `
body { font: 14px/1.45 Helvetica, Arial, sans-serif; color: #222; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { padding: 3px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.mark td { background: #fff4c2; font-weight: bold; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.chart svg { max-width: 100%; height: auto; }
footer { margin-top: 3em; color: #888; font-size: 12px; }
`;

function cell(c: Cell): string {
  if (typeof c === 'object') return `<td class="num">${escapeHtml(formatMeasured(c.measured))}</td>`;
  return typeof c === 'number'
    ? `<td class="num">${Number.isFinite(c) ? escapeHtml(formatNumber(c)) : escapeHtml(String(c))}</td>`
    : `<td>${escapeHtml(c)}</td>`;
}

/** Six significant digits, the precision the tables of the CLI show. */
export function formatNumber(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(6);
}

/** A metric: six significant digits even when it is a whole number (accuracy 1 is 1.00000). */
export function formatMeasured(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(6) : String(x);
}

function table(t: Table): string {
  const head = `<tr>${t.head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const rows = t.rows.map((r, i) => `<tr${t.mark?.includes(i) ? ' class="mark"' : ''}>${r.map(cell).join('')}</tr>`);
  return `<table>\n${head}\n${rows.join('\n')}\n</table>`;
}

/** The SVG's own XML prolog, if any, is not allowed inside HTML. */
function inlineSvg(svg: string): string {
  return `<div class="chart">${svg.replace(/^<\?xml[^>]*>\s*/, '')}</div>`;
}

function section(s: Section): string {
  const parts = [`<h2>${escapeHtml(s.title)}</h2>`];
  for (const p of s.text ?? []) parts.push(`<p>${escapeHtml(p)}</p>`);
  if (s.svg !== undefined) parts.push(inlineSvg(s.svg));
  if (s.table !== undefined) parts.push(table(s.table));
  if (s.code !== undefined) parts.push(`<pre><code>${escapeHtml(s.code)}</code></pre>`);
  return `<section>\n${parts.join('\n')}\n</section>`;
}

export function htmlPage(title: string, subtitle: string, sections: readonly Section[]): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="sub">${escapeHtml(subtitle)}</p>
${sections.map(section).join('\n')}
<footer>Made by avg-ckpt ${escapeHtml(VERSION)}.</footer>
</body>
</html>
`;
}
