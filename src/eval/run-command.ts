/**
 * Runs one evaluation command: no shell unless asked, stdin closed, the tail of stdout and
 * stderr kept (a harness may print megabytes of progress), an optional timeout. Commands still
 * running when avg-ckpt exits (Ctrl-C, an error elsewhere) are sent SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface CommandRun {
  /** Exit code, or null when a signal ended it. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** The last bytes of stdout and stderr (at most `TAIL_BYTES` each). */
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the command could not be started (no such program, not executable). */
  readonly spawnError?: NodeJS.ErrnoException;
}

export interface CommandSpec {
  /** argv (program first), or a script for /bin/sh -c. */
  readonly argv?: readonly string[];
  readonly script?: string;
  readonly timeoutMs?: number;
}

/** Enough for the metric line and the stderr lines an error shows, bounded whatever the command prints. */
export const TAIL_BYTES = 64 * 1024;
/** Time a timed-out command gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 5000;
/** Time the pipes may stay open after the command exits (a background grandchild holding them). */
const DRAIN_MS = 1000;

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGTERM');
  });
}

class Tail {
  private chunks: Buffer[] = [];
  private bytes = 0;

  push(b: Buffer): void {
    this.chunks.push(b);
    this.bytes += b.length;
    while (this.bytes - this.chunks[0].length >= TAIL_BYTES) this.bytes -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - TAIL_BYTES)).toString('utf8');
  }
}

export function runCommand(spec: CommandSpec): Promise<CommandRun> {
  installExitHook();
  const [program, ...args] = spec.script !== undefined ? ['/bin/sh', '-c', spec.script] : spec.argv!;
  return new Promise((resolve) => {
    const stdout = new Tail();
    const stderr = new Tail();
    let timedOut = false;
    let settled = false;
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    child.stdout!.on('data', (b: Buffer) => stdout.push(b));
    child.stderr!.on('data', (b: Buffer) => stderr.push(b));
    const timers: NodeJS.Timeout[] = [];
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      running.delete(child);
      timers.forEach(clearTimeout);
      child.stdout!.destroy();
      child.stderr!.destroy();
      resolve({
        code,
        signal,
        timedOut,
        stdout: stdout.text(),
        stderr: stderr.text(),
        ...(spawnError ? { spawnError } : {}),
      });
    };
    if (spec.timeoutMs !== undefined) {
      timers.push(
        setTimeout(() => {
          timedOut = true;
          child.kill('SIGTERM');
          timers.push(setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS));
        }, spec.timeoutMs),
      );
    }
    child.on('error', (e: NodeJS.ErrnoException) => finish(null, null, e));
    child.on('close', (code, signal) => finish(code, signal));
    child.on('exit', (code, signal) => timers.push(setTimeout(() => finish(code, signal), DRAIN_MS)));
  });
}
