/** Runs the built CLI (bin/avg-ckpt.js -> dist/) as a user would. */
import { spawnSync } from 'node:child_process';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], cwd = process.cwd()): CliResult {
  const r = spawnSync(process.execPath, ['bin/avg-ckpt.js', ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
