/**
 * The one owner of the terminal. The progress bar (on stderr, only on a TTY, never with --quiet
 * or --json) hides the cursor and turns line wrapping off while it draws; `restoreTerminal` turns
 * both back on, and the CLI calls it on every way out: success, an error, a signal.
 */
import cliProgress from 'cli-progress';
import { formatBytes } from '../report/format-bytes.js';

export interface Progress {
  update(done: number, detail?: string): void;
  stop(): void;
}

/** What the bar needs of a stream: process.stderr, or a fake TTY in tests. */
export type TerminalStream = NodeJS.WritableStream & { readonly isTTY?: boolean };

const SHOW_CURSOR = '\x1b[?25h';
const WRAP_ON = '\x1b[?7h';

const silent: Progress = { update: () => undefined, stop: () => undefined };

/** The stream whose cursor and line wrapping a running bar changed, until restored. */
let changed: TerminalStream | undefined;

/** Shows the cursor and turns line wrapping back on where a bar changed them; safe to call twice. */
export function restoreTerminal(): void {
  if (changed === undefined) return;
  const stream = changed;
  changed = undefined;
  stream.write(SHOW_CURSOR + WRAP_ON);
}

/** @param unit 'bytes' shows sizes; 'items' shows counts (candidates, checkpoints). */
export function startProgress(
  total: number,
  unit: 'bytes' | 'items',
  enabled: boolean,
  stream: TerminalStream = process.stderr,
): Progress {
  if (!enabled || !stream.isTTY) return silent;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format:
        unit === 'bytes'
          ? ' {bar} {percentage}% | {doneText} / {totalText} | {detail} | ETA {eta_formatted}'
          : ' {bar} {value}/{total} | {detail} | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  changed = stream;
  bar.start(total, 0, { detail: '', doneText: formatBytes(0), totalText: formatBytes(total) });
  return {
    update: (done, detail = '') =>
      bar.update(done, { detail, doneText: formatBytes(done), totalText: formatBytes(total) }),
    stop: () => {
      bar.stop();
      restoreTerminal();
    },
  };
}
