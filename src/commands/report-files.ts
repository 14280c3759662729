/** The report files a scoring command writes (JSON, chart, page), named for the output guard. */
import type { GuardedOutput } from '../io/output-guard.js';

export interface ReportFiles {
  readonly report?: string;
  readonly plot?: string;
  readonly html?: string;
}

export function reportOutputs(o: ReportFiles = {}): GuardedOutput[] {
  const files: [string | undefined, string][] = [[o.report, 'report (--report)'], [o.plot, 'chart (--plot)'], [o.html, 'page (--html)']];
  return files.flatMap(([path, role]) => (path === undefined ? [] : [{ path, role }]));
}
