/**
 * The terminal is left as found on every way out: the progress bar hides the cursor and turns
 * line wrapping off; success, an error and a signal all turn both back on. A fake TTY stands in
 * for the terminal (a Writable that says it is one and records what it is sent).
 */
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreTerminal, startProgress } from '../../src/cli/terminal.js';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';

const HIDE_CURSOR = '\x1b[?25l';
const WRAP_OFF = '\x1b[?7l';
const RESTORED = '\x1b[?25h\x1b[?7h';

class FakeTty extends Writable {
  readonly isTTY = true;
  readonly columns = 80;
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'avg-ckpt-terminal-'));
beforeAll(ensureBuilt);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the terminal owner', () => {
  it('a bar hides the cursor and stops wrapping; restoreTerminal turns both back on, once', () => {
    const tty = new FakeTty();
    startProgress(10, 'items', true, tty).update(3, 'x');
    expect(tty.text).toContain(HIDE_CURSOR);
    expect(tty.text).toContain(WRAP_OFF);
    restoreTerminal();
    expect(tty.text.endsWith(RESTORED)).toBe(true);
    const after = tty.text.length;
    restoreTerminal();
    expect(tty.text.length).toBe(after);
  });

  it('not a TTY, or --quiet: nothing is drawn', () => {
    const tty = new FakeTty();
    startProgress(10, 'items', false, tty).update(3);
    expect(tty.text).toBe('');
  });

  it('an error ends the command with the terminal restored', async () => {
    const tty = new FakeTty();
    startProgress(10, 'items', true, tty); // a bar left running when the command failed
    const r = await runCli(['merge', join(dir, 'no-such-run'), '--dry-run'], { inProcess: true });
    expect(r.code).toBe(1);
    expect(tty.text.endsWith(RESTORED)).toBe(true);
  });

  it('a signal ends the process with its code and the terminal restored', async () => {
    const log = join(dir, 'tty.log');
    const script = `
      import { appendFileSync } from 'node:fs';
      import { Writable } from 'node:stream';
      import { installProcessHandlers } from './dist/cli/process.js';
      import { startProgress } from './dist/cli/terminal.js';
      const tty = Object.assign(new Writable({ write(c, _e, done) { appendFileSync(${JSON.stringify(log)}, c); done(); } }), { isTTY: true, columns: 80 });
      installProcessHandlers();
      startProgress(10, 'items', true, tty).update(1);
      setInterval(() => undefined, 1000);
      process.kill(process.pid, 'SIGTERM');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(code).toBe(143);
    const text = readFileSync(log, 'utf8');
    expect(text).toContain(HIDE_CURSOR);
    expect(text.endsWith(RESTORED)).toBe(true);
  });
});

describe('a closed stdout', () => {
  it('`avg-ckpt ... | head -1`: the command ends quietly (exit 0, no stack)', async () => {
    const r = await runCli(['inspect', 'fixtures/runs/digits-mlp/run', '--json'], {
      during: (child) => void child.stdout?.destroy(),
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
