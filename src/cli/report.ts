/** `avg-ckpt report merge part-*.json`: the part reports of one split sweep, ranked together. */
import type { Argv } from 'yargs';
import { mergeSweepReports } from '../commands/report-merge.js';
import { formatSweepTable } from '../report/sweep-table.js';
import { writeReportFile } from '../report/write.js';
import { defineCommand } from './command.js';
import { globalOptions } from './common-options.js';

const builder = (y: Argv) =>
  globalOptions(y)
    .positional('action', {
      choices: ['merge'] as const,
      demandOption: true,
      describe: 'merge: rank the parts of one sweep together',
    })
    .positional('reports', {
      type: 'string',
      array: true,
      demandOption: true,
      describe: 'The JSON reports of sweep-window --candidates-part I/N',
    })
    .option('report', { type: 'string', describe: 'Write the merged JSON report to this file' })
    .example('$0 report merge part-*.json --report sweep.json', 'Rank the candidates of every part together');

export const reportCommand = defineCommand({
  command: 'report <action> <reports..>',
  describe: 'Merge the part reports of a sweep split with sweep-window --candidates-part I/N',
  builder,
  handler: async (a) => {
    const report = await mergeSweepReports(a.reports);
    if (a.report !== undefined) await writeReportFile(a.report, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(a.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatSweepTable(report)}\n`);
  },
});
