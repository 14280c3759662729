/**
 * The one way tests run the CLI (`runCli`): the built binary in a child process, as a user would,
 * or `inProcess` its main() in this worker (no process start-up; for the slow scoring tests);
 * and checking that inputs stay untouched.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vi } from 'vitest';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const BIN = join(ROOT, 'bin', 'avg-ckpt.js');
const MAXRSS_HOOK = join(ROOT, 'test', 'helpers', 'report-maxrss.mjs');

/** The e2e tests run the built CLI: build once if dist/ is missing. */
export function ensureBuilt(): void {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js')) || !existsSync(join(ROOT, 'dist', 'engine', 'kernels.wasm'))) {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Peak resident memory of the child in bytes, when `measureMemory` was asked for. */
  maxRss?: number;
}

export interface RunOptions {
  cwd?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  measureMemory?: boolean;
  /** Called once the child is running; may send it signals. */
  during?: (child: import('node:child_process').ChildProcess) => void | Promise<void>;
  /** Shell prefix, e.g. `ulimit -n 64;` (runs through /bin/sh). */
  shellPrefix?: string;
  /** Call main() in this process, capturing stdout and stderr (only `args` apply, no other option). */
  inProcess?: boolean;
}

async function runInProcess(args: string[]): Promise<RunResult> {
  const { main } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((stdout += String(c)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((stderr += String(c)), true));
  try {
    const code = await main(args);
    return { code, signal: null, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

let rssSeq = 0;

export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (opts.inProcess) return runInProcess(args);
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: '1', ...opts.env };
  let rssFile: string | undefined;
  if (opts.measureMemory) {
    rssFile = join(ROOT, 'node_modules', '.cache', `maxrss-${process.pid}-${rssSeq++}`);
    env.AVG_CKPT_TEST_MAXRSS_FILE = rssFile;
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${MAXRSS_HOOK}`.trim();
  }
  const child =
    opts.shellPrefix === undefined
      ? spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('/bin/sh', ['-c', `${opts.shellPrefix} exec "$0" "$@"`, process.execPath, BIN, ...args], {
          cwd: opts.cwd ?? ROOT,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const done = new Promise<RunResult>((res) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let maxRss: number | undefined;
      if (rssFile !== undefined && existsSync(rssFile)) maxRss = Number(readFileSync(rssFile, 'utf8')) * 1024;
      res({ code, signal, stdout, stderr, maxRss });
    });
  });
  if (opts.during) void Promise.resolve(opts.during(child));
  return done;
}

/** sha256 + size of every file under `dir` (or of one file), by relative path. */
export function snapshot(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const n of readdirSync(p).sort()) walk(join(p, n));
    } else {
      out.set(relative(path, p) || '.', `${st.size}:${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
    }
  };
  walk(path);
  return out;
}

/** Every entry (files and folders, hidden ones included) under `dir`, relative, sorted. */
export function listAll(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const n of readdirSync(p).sort()) {
      const q = join(p, n);
      out.push(relative(dir, q));
      if (statSync(q).isDirectory()) walk(q);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Waits until `pred` holds (polling), or throws after `ms`. */
export async function waitFor(pred: () => boolean, ms = 20_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
