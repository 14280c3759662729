/** A progress bar on stderr, only on a TTY and never with --quiet or --json. */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, detail?: string): void;
  stop(): void;
}

const silent: Progress = { update: () => undefined, stop: () => undefined };

function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export { formatBytes };

/** @param unit 'bytes' shows sizes; 'items' shows counts (candidates, checkpoints). */
export function startProgress(total: number, unit: 'bytes' | 'items', enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return silent;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: unit === 'bytes' ? ' {bar} {percentage}% | {doneText} / {totalText} | {detail} | ETA {eta_formatted}' : ' {bar} {value}/{total} | {detail} | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { detail: '', doneText: formatBytes(0), totalText: formatBytes(total) });
  return {
    update: (done, detail = '') => bar.update(done, { detail, doneText: formatBytes(done), totalText: formatBytes(total) }),
    stop: () => bar.stop(),
  };
}
