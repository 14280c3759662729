/** The report files a scoring command writes (JSON, chart, page), named for the output guard. */
import { extname } from 'node:path';
import { AvgCkptError } from '../errors.js';
import type { GuardedOutput } from '../io/output-guard.js';

export interface ReportFiles {
  readonly report?: string;
  readonly plot?: string;
  readonly html?: string;
}

export function reportOutputs(o: ReportFiles = {}): GuardedOutput[] {
  const files: [string | undefined, string][] = [
    [o.report, 'report (--report)'],
    [o.plot, 'chart (--plot)'],
    [o.html, 'page (--html)'],
  ];
  return files.flatMap(([path, role]) => (path === undefined ? [] : [{ path, role }]));
}

/** Checked before any work (after the output guard): the chart is SVG, so `x.png` is refused rather than filled with SVG. */
export function checkReportNames(o: ReportFiles = {}): void {
  const ext = o.plot === undefined ? '' : extname(o.plot).toLowerCase();
  if (ext !== '' && ext !== '.svg') {
    throw new AvgCkptError(
      'usage',
      `the chart is written as SVG, not ${ext.slice(1).toUpperCase()}: give it a .svg name`,
      { file: o.plot },
    );
  }
}
