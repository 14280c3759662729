/**
 * `--eval-cmd`: scores a candidate with the user's own evaluation. The candidate is written
 * exactly as `--write-best` writes it (a folder like the input with config and tokenizer files,
 * or a .safetensors file) into a scratch folder, the command runs on it (no shell unless asked),
 * its metrics are read from the last line of its stdout, and the candidate is removed. `jobs`
 * candidates are written in one pass over the checkpoints (reading each once, not once per
 * candidate), then evaluated at once. No onnxruntime is loaded on this path.
 */
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mergeMany } from '../engine/merge.js';
import { AvgCkptError, ioError } from '../errors.js';
import { trackTemporary, untrackTemporary } from '../io/atomic-output.js';
import type { WritableFloat } from '../io/dtype.js';
import { raw } from '../recipes/lawa.js';
import { support, type WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import { planMerge } from '../engine/plan.js';
import { checkTemplate, commandArgv, shellScript, splitCommand, type CommandValues } from './command-line.js';
import { readMetricLine } from './metric-line.js';
import type { Metrics } from './metrics.js';
import { runCommand, type CommandRun } from './run-command.js';
import { CandidateFailed, ranksBetter, settle, type Outcome, type Scorer } from './scorer.js';

export interface CommandScorerOptions {
  /** The template, e.g. `python eval.py --model {path}`; `{path}`, `{name}`, `{step}` substituted. */
  readonly command: string;
  /** Run the template with /bin/sh -c (values substituted shell-quoted). */
  readonly shell?: boolean;
  /** The selected series in step order (what the candidates' vectors are over). */
  readonly checkpoints: readonly Checkpoint[];
  /** The ranking metric, a key of the command's JSON (default `loss`). */
  readonly metric?: string;
  /** Required for a metric whose direction is not known (anything but loss, perplexity, mse, accuracy). */
  readonly direction?: 'max' | 'min';
  /** Where candidates are written (default: the OS temporary folder). */
  readonly scratch?: string;
  /** Candidates evaluated at once (default 1). */
  readonly jobs?: number;
  /** Seconds one command may run. */
  readonly timeoutSeconds?: number;
  /** Keep the candidates instead of removing them once scored. */
  readonly keep?: boolean;
  /** Output dtype of the candidates' float tensors (default: the input's, as `--write-best`). */
  readonly dtype?: WritableFloat;
  /** Threads for writing the candidates (default: the cores). */
  readonly threads?: number;
  /** One line per failed candidate (and the command's last stderr lines), as it happens. */
  readonly onNote?: (line: string) => void;
}

/** Directions of the metrics whose sense is not in doubt; any other needs --maximize or --minimize. */
const KNOWN_DIRECTIONS: Readonly<Record<string, 'max' | 'min'>> = {
  loss: 'min',
  perplexity: 'min',
  mse: 'min',
  accuracy: 'max',
};

/** Room for each candidate's safetensors headers and copied config/tokenizer files. */
export const CANDIDATE_OVERHEAD = 16 * 2 ** 20;

/** Lines of the command's stderr shown with a failure. */
const STDERR_LINES = 5;

function size(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/** Refuses a scratch folder without room for `atOnce` candidates of `perCandidate` bytes. */
export function checkScratchSpace(scratch: string, free: number, perCandidate: number, atOnce: number): void {
  const need = perCandidate * atOnce;
  if (need > free) {
    throw new AvgCkptError(
      'scratch-space',
      `has ${size(free)} free, and ${atOnce} candidate${atOnce > 1 ? 's' : ''} at once (--jobs) need ${size(need)} (${size(perCandidate)} each): free some space, lower --jobs, or pass --scratch DIR on a larger disk`,
      { file: scratch },
    );
  }
}

function lastLines(text: string, n: number): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '')
    .slice(-n);
}

/** The command's metrics, or a `CandidateFailed` saying why it gave none. */
function judge(run: CommandRun, rank: string, timeoutSeconds: number | undefined, name: string): Metrics {
  const stderr = lastLines(run.stderr, STDERR_LINES);
  // the last stderr line ends the headline of a crash; the lines before it are shown below it
  const crash = (what: string) =>
    new CandidateFailed(
      name,
      `the command ${what}${stderr.length > 0 ? `: ${stderr[stderr.length - 1]}` : ''}`,
      stderr.slice(0, -1),
    );
  if (run.timedOut)
    throw new CandidateFailed(name, `the command timed out after ${timeoutSeconds} s (--eval-timeout)`, stderr);
  if (run.signal !== null)
    throw crash(`was killed by ${run.signal}${run.signal === 'SIGKILL' ? ' (out of memory?)' : ''}`);
  if (run.code !== 0) throw crash(`exited with code ${run.code}`);
  const read = readMetricLine(run.stdout, rank);
  if ('problem' in read) throw new CandidateFailed(name, `the command ${read.problem}`, stderr);
  return read.metrics;
}

export class CommandScorer implements Scorer {
  readonly device = 'external';
  readonly engineKind = 'command';
  readonly setupMs = 0;
  private readonly words?: string[];
  /** Names handed out, so that two candidates of one name (greedy-soup trials) get two folders. */
  private readonly used = new Map<string, number>();

  private constructor(
    private readonly opts: CommandScorerOptions,
    readonly rankMetric: string,
    readonly direction: 'max' | 'min',
    /** This session's folder under the scratch folder. */
    private readonly folder: string,
    readonly notes: readonly string[],
  ) {
    if (!opts.shell) this.words = splitCommand(opts.command);
  }

  get engineReason(): string {
    const jobs = this.opts.jobs ?? 1;
    return `command: ${this.opts.command}${jobs > 1 ? ` (${jobs} at once)` : ''}`;
  }

  static async create(opts: CommandScorerOptions): Promise<CommandScorer> {
    if (opts.checkpoints.length === 0) throw new AvgCkptError('empty-selection', 'no checkpoints to evaluate');
    checkTemplate(opts.command);
    if (!opts.shell) splitCommand(opts.command); // refuses a bad template before any work
    const jobs = opts.jobs ?? 1;
    if (!Number.isSafeInteger(jobs) || jobs < 1)
      throw new AvgCkptError('usage', `--jobs must be a whole number >= 1, got ${jobs}`);
    if (opts.timeoutSeconds !== undefined && !(opts.timeoutSeconds > 0))
      throw new AvgCkptError('usage', `--eval-timeout must be a number of seconds > 0, got ${opts.timeoutSeconds}`);
    const rank = opts.metric ?? 'loss';
    const direction = opts.direction ?? KNOWN_DIRECTIONS[rank];
    if (direction === undefined)
      throw new AvgCkptError(
        'usage',
        `--metric ${rank}: say whether higher or lower is better with --maximize or --minimize`,
      );

    const scratch = resolve(opts.scratch ?? tmpdir());
    const steps = opts.checkpoints.map((c) => c.step);
    const newest = opts.checkpoints[opts.checkpoints.length - 1];
    const plan = planMerge(opts.checkpoints, raw(steps), {
      dtype: opts.dtype,
      outputKind: newest.isFolder ? 'dir' : 'file',
    });
    let free: number;
    try {
      const fs = await statfs(scratch);
      free = fs.bavail * fs.bsize;
    } catch (e) {
      throw ioError(scratch, e, 'use the scratch folder');
    }
    checkScratchSpace(scratch, free, plan.bytesToWrite + CANDIDATE_OVERHEAD, jobs);
    let folder: string;
    try {
      folder = await mkdtemp(join(scratch, 'avg-ckpt-eval-'));
    } catch (e) {
      throw ioError(scratch, e, 'create a folder in the scratch folder');
    }
    if (!opts.keep) trackTemporary(folder);
    const notes = [
      `candidates are written to ${folder}${opts.keep ? ' and kept (--keep)' : ' and removed once scored'}`,
    ];
    return new CommandScorer(opts, rank, direction, folder, notes);
  }

  better(a: Metrics, b: Metrics): boolean {
    return ranksBetter(a, b, this.rankMetric, this.direction);
  }

  private pathFor(vector: WeightVector): string {
    const n = (this.used.get(vector.name) ?? 0) + 1;
    this.used.set(vector.name, n);
    const base = join(this.folder, n === 1 ? vector.name : `${vector.name}-${n}`);
    return this.opts.checkpoints[this.opts.checkpoints.length - 1].isFolder ? `${base}/` : `${base}.safetensors`;
  }

  /**
   * Candidates written in one pass and then evaluated together: `--jobs`, the number the scratch
   * check made room for, so no more are ever on disk at once than before batching.
   */
  private get batchSize(): number {
    return this.opts.jobs ?? 1;
  }

  /**
   * Writes `vectors` in one pass over the checkpoints (mergeMany: each chunk of each checkpoint
   * read once for all of them, each output the bytes `merge` writes for its vector alone).
   */
  private async write(vectors: readonly WeightVector[]): Promise<string[]> {
    const paths = vectors.map((v) => this.pathFor(v));
    await mergeMany(this.opts.checkpoints, vectors, paths, { dtype: this.opts.dtype, threads: this.opts.threads });
    for (const path of paths) trackTemporary(path);
    return paths;
  }

  async score(vector: WeightVector): Promise<Metrics> {
    const [path] = await this.write([vector]);
    try {
      return await this.evaluate(vector, path);
    } finally {
      await this.release(path);
    }
  }

  /**
   * Batches of `--jobs` candidates: one pass writes a batch, their commands run at once, each
   * candidate is removed as its command ends, then the next batch. A candidate's time is its
   * share of the pass that wrote its batch plus its own command.
   */
  async scoreAll(
    vectors: readonly WeightVector[],
    onOutcome: (index: number, outcome: Outcome) => void,
  ): Promise<void> {
    for (let start = 0; start < vectors.length; start += this.batchSize) {
      const batch = vectors.slice(start, start + this.batchSize);
      const t0 = performance.now();
      const paths = await this.write(batch);
      const share = (performance.now() - t0) / batch.length;
      // every command of the batch runs to its end (and its candidate is released) before an error
      // that stops the sweep (a program that cannot start) is thrown
      const settled = await Promise.allSettled(
        batch.map(async (v, i) => {
          const outcome = await settle(async () => {
            try {
              return await this.evaluate(v, paths[i]);
            } finally {
              await this.release(paths[i]);
            }
          }, performance.now() - share);
          onOutcome(start + i, outcome);
        }),
      );
      const stopped = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (stopped !== undefined) throw stopped.reason;
    }
  }

  /** Runs the command on the candidate written at `path`: its metrics, or `CandidateFailed` (reported as a line). */
  private async evaluate(vector: WeightVector, path: string): Promise<Metrics> {
    const used = support(vector);
    const values: CommandValues = { path, name: vector.name, step: used[used.length - 1] };
    const timeoutMs = this.opts.timeoutSeconds === undefined ? undefined : this.opts.timeoutSeconds * 1000;
    const run = await runCommand(
      this.opts.shell
        ? { script: shellScript(this.opts.command, values), timeoutMs }
        : { argv: commandArgv(this.words!, values), timeoutMs },
    );
    if (run.spawnError !== undefined) {
      const why =
        run.spawnError.code === 'ENOENT'
          ? 'no such program (give its path, or check PATH)'
          : run.spawnError.code === 'EACCES'
            ? 'permission denied (not executable?)'
            : run.spawnError.message;
      throw new AvgCkptError('eval-command', `--eval-cmd: cannot run "${this.words?.[0] ?? '/bin/sh'}": ${why}`);
    }
    try {
      return judge(run, this.rankMetric, this.opts.timeoutSeconds, vector.name);
    } catch (e) {
      if (e instanceof CandidateFailed) this.report(e);
      throw e;
    }
  }

  /** A scored candidate: kept with --keep (no longer removed on a signal), else removed. */
  private async release(path: string): Promise<void> {
    if (this.opts.keep) untrackTemporary(path);
    else await this.remove(path);
  }

  private report(e: CandidateFailed): void {
    const note = this.opts.onNote ?? (() => undefined);
    note(e.oneLine());
    for (const line of e.detail) note(`  | ${line}`);
  }

  private async remove(path: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
    untrackTemporary(path);
  }

  async close(): Promise<void> {
    if (this.opts.keep) return;
    await rm(this.folder, { recursive: true, force: true });
    untrackTemporary(this.folder);
  }
}
