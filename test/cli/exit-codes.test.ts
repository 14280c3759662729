/**
 * The CLI's ways out: main() returns a code and leaves no process-wide handlers behind (the CLI
 * process installs them once, in bin/), and an environment failure inside an engine is a one-line
 * exit 1, not an internal error.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_SIGNALS } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';

const MLP = 'fixtures/runs/digits-mlp';

describe('exit codes', () => {
  it('main() installs no signal or stdout handlers, however often it runs', async () => {
    const before = EXIT_SIGNALS.map((s) => process.listenerCount(s));
    const stdoutBefore = process.stdout.listenerCount('error');
    for (let i = 0; i < 12; i++)
      expect((await runCli(['inspect', `${MLP}/run`, '--last', '1', '--json'], { inProcess: true })).code).toBe(0);
    expect(EXIT_SIGNALS.map((s) => process.listenerCount(s))).toEqual(before);
    expect(process.stdout.listenerCount('error')).toBe(stdoutBefore);
  });

  it('TMPDIR that does not exist: sweep-window --engine materialize exits 1 with one line naming it', async () => {
    const r = await runCli(
      [
        'sweep-window',
        `${MLP}/run`,
        '--onnx',
        `${MLP}/model.onnx`,
        '--data',
        MLP,
        '--engine',
        'materialize',
        '--windows',
        '2',
        '--device',
        'cpu',
        '--quiet',
      ],
      { env: { TMPDIR: '/nonexistent' } },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(
      'avg-ckpt: /nonexistent: cannot create a temporary folder for the candidate models (set TMPDIR to a writable folder): no such file or folder\n',
    );
  });
});
