/**
 * `sweep-window --plot` and `--html`: the sweep's chart, and one page with the table, the chart,
 * the winner's recipe and the `merge` command that writes it.
 */
import { AvgCkptError } from '../errors.js';
import type { CandidateResult, SweepReport } from '../analysis/sweep-report.js';
import { weightVector, type WeightVector } from '../recipes/weight-vector.js';
import type { SelectionOptions } from '../series/select.js';
import { renderSvg, sweepChartSpec } from './charts.js';
import { htmlPage, measured, type Section } from './html.js';
import { confidenceLines } from './margin-text.js';
import { unmappedNote } from './unmapped-note.js';
import { writeReportFile } from './write.js';
import { formatCommand, mergeCommandFor } from './recipe-command.js';
import { changeAgainst, metricNames } from './sweep-table.js';

export interface SweepOutputOptions {
  /** The run and selection the sweep was given: the reproducing command repeats them. */
  readonly inputs: readonly string[];
  readonly selection: SelectionOptions;
  readonly plot?: string;
  readonly html?: string;
}

/** The candidate as a vector over the whole selection (the report keeps only the steps it reads). */
function overSelection(c: CandidateResult, steps: readonly number[]): WeightVector {
  const w = new Map(c.steps.map((s, i) => [s, c.weights[i]]));
  return weightVector(
    c.name,
    c.method,
    { ...c.params },
    steps,
    steps.map((s) => w.get(s) ?? 0),
  );
}

function optional(line: string | undefined): string[] {
  return line === undefined ? [] : [line];
}

export function sweepHtml(report: SweepReport, svg: string | undefined, opts: SweepOutputOptions): string {
  const steps = report.checkpoints.map((c) => c.step);
  const best = report.candidates.find((c) => c.name === report.best)!;
  const base = report.candidates.find((c) => c.name === report.baseline)!;
  const metrics = metricNames(report);
  const failed = report.candidates.filter((c) => c.failed !== undefined);
  const m = report.metric;
  const command = formatCommand(
    mergeCommandFor(opts.inputs, opts.selection, overSelection(best, steps), `${best.name}.safetensors`),
  );
  const pathOf = new Map(report.checkpoints.map((c) => [c.step, c.path]));
  const sections: Section[] = [
    {
      title: 'Result',
      text: [
        `Best: ${best.name}, ${m} ${best.metrics[m].toPrecision(6)} (${report.direction === 'min' ? 'lower' : 'higher'} is better), ${base.failed !== undefined ? `the baseline ${base.name} failed to score` : `against ${base.metrics[m].toPrecision(6)} for ${base.name}: ${changeAgainst(best.metrics[m], base.metrics[m])}`}.`,
        `${report.candidates.length} candidates over ${steps.length} checkpoints (steps ${steps[0]}..${steps[steps.length - 1]}), scored on ${report.device} with the ${report.engine} engine.`,
        ...confidenceLines(report),
        ...optional(unmappedNote(report.unmapped)),
        ...failed.map((c) => `${c.name} failed to score: ${c.failed}`),
      ],
    },
    ...(svg === undefined
      ? []
      : [{ title: `${m}${report.holdout ? ' on the held-out rows' : ''} by window size and decay`, svg }]),
    {
      title: 'Candidates',
      table: {
        head: ['candidate', 'steps', ...metrics, `change in ${m}`],
        rows: report.candidates.map((c) => [
          c.optimistic ? `${c.name} [optimistic]` : c.name,
          c.steps.length === 1 ? `${c.steps[0]}` : `${c.steps[0]}..${c.steps[c.steps.length - 1]} (${c.steps.length})`,
          ...metrics.map((k) => (c.metrics[k] === undefined ? '-' : measured(c.metrics[k]))),
          c.failed !== undefined ? 'failed' : c === base ? 'baseline' : changeAgainst(c.metrics[m], base.metrics[m]),
        ]),
        mark: [report.candidates.indexOf(best)],
      },
    },
    {
      title: `Recipe of the winner: ${best.name}`,
      text: [
        `Method ${best.method}${
          Object.keys(best.params).length > 0
            ? ` with ${Object.entries(best.params)
                .map(([k, v]) => `${k} = ${v}`)
                .join(', ')}`
            : ''
        }; the checkpoints it averages:`,
      ],
      table: {
        head: ['step', 'weight', 'checkpoint'],
        rows: best.steps.map((s, i) => [s, best.weights[i], pathOf.get(s) ?? '']),
      },
    },
    {
      title: 'Reproduce it',
      text: ['This command writes the same average (float64 accumulation, the input dtype):'],
      code: command,
    },
  ];
  return htmlPage(
    `avg-ckpt sweep-window: ${opts.inputs.join(' ')}`,
    `Candidate averages of a training run, ranked by validation ${m}.`,
    sections,
  );
}

/** Writes what `--plot` and `--html` ask for; returns the paths written. */
export async function writeSweepOutputs(report: SweepReport, opts: SweepOutputOptions): Promise<string[]> {
  if (opts.plot === undefined && opts.html === undefined) return [];
  const spec = sweepChartSpec(
    report.candidates.filter((c) => c.failed === undefined),
    report.metric,
    report.direction,
    report.best,
    report.holdout,
  );
  const svg = spec === undefined ? undefined : await renderSvg(spec);
  if (opts.plot !== undefined && svg === undefined)
    throw new AvgCkptError(
      'usage',
      '--plot: the sweep has no LAWA, EMA or power-EMA candidates to plot against their parameter',
    );
  const written: string[] = [];
  if (opts.plot !== undefined && svg !== undefined) {
    await writeReportFile(opts.plot, svg);
    written.push(opts.plot);
  }
  if (opts.html !== undefined) {
    await writeReportFile(opts.html, sweepHtml(report, svg, opts));
    written.push(opts.html);
  }
  return written;
}
