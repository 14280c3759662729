/**
 * `sweep-window --eval-cmd` and `curve --eval-cmd` end to end: an external evaluation (a tiny Node
 * script computing the digits-mlp loss itself) picks the same winner with the same losses as the
 * ONNX sweep; every failure of the command is one line with the other candidates' results kept.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli, waitFor } from '../helpers/cli.js';

const MLP = 'fixtures/runs/digits-mlp';
const EVAL = `node test/helpers/digits-mlp-eval.mjs {path} ${MLP}`;
const BAD = `node test/helpers/misbehaving-eval.mjs {name} {path} ${MLP}`;
const GRID = ['--windows', '2,4,8,16', '--ema', '0.9'];
const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-evalcmd-'));
let n = 0;
const scratch = () => {
  const d = join(tmp, `scratch${n++}`);
  mkdirSync(d);
  return d;
};
beforeAll(() => ensureBuilt());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Candidate {
  name: string;
  metrics: Record<string, number>;
  failed?: string;
  steps: number[];
}

describe('sweep-window --eval-cmd', () => {
  it('picks the ONNX sweep winner with the same losses (1e-6), and never loads onnxruntime', async () => {
    const s = scratch();
    // reports whether onnxruntime's native library is mapped into the process when it exits
    const hook = join(tmp, 'ort-hook.mjs');
    const mapped = join(tmp, 'ort-mapped');
    writeFileSync(
      hook,
      `import { readFileSync, writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(mapped)}, String(readFileSync('/proc/self/maps', 'utf8').includes('onnxruntime'))));\n`,
    );
    const [onnx, cmd] = await Promise.all([
      runCli([
        'sweep-window',
        `${MLP}/run`,
        '--onnx',
        `${MLP}/model.onnx`,
        '--data',
        MLP,
        ...GRID,
        '--device',
        'cpu',
        '--json',
      ]),
      runCli(['sweep-window', `${MLP}/run`, '--eval-cmd', EVAL, ...GRID, '--scratch', s, '--jobs', '2', '--json'], {
        env: { NODE_OPTIONS: `--import=${hook}` },
      }),
    ]);
    expect(onnx.code).toBe(0);
    expect(cmd.stderr).toMatch(/candidates are written to .*avg-ckpt-eval-\w+ and removed once scored/);
    expect(cmd.code).toBe(0);
    const a = JSON.parse(onnx.stdout);
    const b = JSON.parse(cmd.stdout);
    expect(b).toMatchObject({
      metric: 'loss',
      direction: 'min',
      device: 'external',
      engine: 'command',
      best: 'lawa-8',
      baseline: 'raw-1200',
    });
    expect(b.best).toBe(a.best);
    expect(b.candidates.map((c: Candidate) => c.name)).toEqual(a.candidates.map((c: Candidate) => c.name));
    for (const [i, c] of (b.candidates as Candidate[]).entries()) {
      expect(Math.abs(c.metrics.loss - a.candidates[i].metrics.loss), c.name).toBeLessThan(1e-6);
      expect(c.metrics.accuracy).toBe(a.candidates[i].metrics.accuracy);
      expect(c.steps).toEqual(a.candidates[i].steps);
    }
    expect(readFileSync(mapped, 'utf8')).toBe('false');
    expect(readdirSync(s)).toEqual([]); // candidates and their folder removed
  });

  it('--write-best, --report, --html and --plot work as with ONNX scoring; failed candidates are listed as failed', async () => {
    const s = scratch();
    const out = join(tmp, 'outputs');
    const r = await runCli([
      'sweep-window',
      `${MLP}/run`,
      '--eval-cmd',
      `${BAD} lawa-2=exit lawa-4=garbage`,
      ...GRID,
      '--scratch',
      s,
      '--write-best',
      join(out, 'best/'),
      '--report',
      join(out, 'sweep.json'),
      '--html',
      join(out, 'sweep.html'),
      '--plot',
      join(out, 'sweep.svg'),
    ]);
    expect(r.code).toBe(0);
    // one line per failure, the crash's last stderr line in it and the lines before it below
    expect(r.stderr).toContain('avg-ckpt: lawa-2: the command exited with code 3: RuntimeError: CUDA out of memory\n');
    expect(r.stderr).toContain('avg-ckpt:   | Traceback (most recent call last):\n');
    expect(r.stderr).toContain(
      `avg-ckpt: lawa-4: the command printed a last line that is not a valid JSON object: '{"loss": 0.5,'\n`,
    );
    expect(r.stdout).toMatch(/^ {2}lawa-2 +1180\.\.1200 \(2\) +- +- +failed$/m);
    expect(r.stdout).toMatch(/^\* lawa-8 +1060\.\.1200 \(8\) +0\.0517033 +0\.982000 +-0\.243 \(-82\.5%\)$/m);
    expect(r.stdout).toContain('failed: lawa-2: the command exited with code 3: RuntimeError: CUDA out of memory\n');
    const j = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
    expect(j.best).toBe('lawa-8');
    expect(
      j.candidates.filter((c: Candidate) => c.failed !== undefined).map((c: Candidate) => [c.name, c.metrics]),
    ).toEqual([
      ['lawa-2', {}],
      ['lawa-4', {}],
    ]);
    const html = readFileSync(join(out, 'sweep.html'), 'utf8');
    expect(html).toContain('lawa-2 failed to score: the command exited with code 3');
    expect(html).toMatch(/<td>lawa-4<\/td>.*<td>failed<\/td>/);
    expect(readFileSync(join(out, 'sweep.svg'), 'utf8')).toMatch(/^<svg/);
    // the winner is written as merge writes it
    expect(readdirSync(join(out, 'best'))).toEqual(['model.safetensors']);
    const best = await runCli([
      'sweep-window',
      join(out, 'best'),
      '--eval-cmd',
      EVAL,
      '--windows',
      '1',
      '--scratch',
      s,
      '--json',
    ]);
    expect(
      Math.abs(
        JSON.parse(best.stdout).candidates[0].metrics.loss -
          j.candidates.find((c: Candidate) => c.name === 'lawa-8').metrics.loss,
      ),
    ).toBe(0);
  });

  it('a timeout, no metric line, or a missing metric fails only that candidate; every candidate failing exits 1', async () => {
    const r = await runCli(
      [
        'sweep-window',
        `${MLP}/run`,
        '--eval-cmd',
        `${BAD} raw-1200=sleep lawa-2=words lawa-8=silent lawa-16=other`,
        ...GRID,
        '--scratch',
        scratch(),
        '--eval-timeout',
        '15',
        '--json',
      ],
      { timeoutMs: 110_000 },
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Object.fromEntries(j.candidates.map((c: Candidate) => [c.name, c.failed ?? 'ok']))).toEqual({
      // 15 s: the candidates that do finish must, on a loaded 2-core machine
      'raw-1200': 'the command timed out after 15 s (--eval-timeout)',
      'lawa-2': "the command printed no metric: its last line is 'evaluation done.', not a JSON object or a number",
      'lawa-4': 'ok',
      'lawa-8':
        'the command printed nothing on stdout (expected a JSON object of metrics, or a number, as its last line)',
      'lawa-16': 'the command printed no "loss" (its metrics: acc); name the ranking metric with --metric',
      'ema-0.9': 'ok',
    });
    expect(j.best).toBe('ema-0.9'); // lawa-8 failed: the best that scored
    const all = await runCli([
      'sweep-window',
      `${MLP}/run`,
      '--eval-cmd',
      `${BAD} raw-1200=exit lawa-2=exit`,
      '--windows',
      '2',
      '--scratch',
      scratch(),
    ]);
    expect(all.code).toBe(1);
    expect(all.stdout).toBe('');
    expect(all.stderr.trim().split('\n').pop()).toBe(
      'avg-ckpt: every candidate failed to score (2 of 2; the first: the command exited with code 3: RuntimeError: CUDA out of memory); see the lines above',
    );
  }, 120_000);

  it('Ctrl-C removes the candidates and stops the running command', async () => {
    const s = scratch();
    const pid = join(tmp, 'sleeper.pid');
    const r = await runCli(
      ['sweep-window', `${MLP}/run`, '--eval-cmd', `${BAD} raw-1200=sleep:${pid}`, '--windows', '2', '--scratch', s],
      {
        during: async (child) => {
          await waitFor(() => existsSync(pid), 30_000, 'the evaluation command');
          child.kill('SIGINT');
        },
      },
    );
    expect(r.code).toBe(130);
    expect(readdirSync(s)).toEqual([]);
    const alive = (p: number) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor(() => !alive(Number(readFileSync(pid, 'utf8'))), 5000, 'the command to end');
  });

  it('usage errors: both or neither of --onnx/--eval-cmd, ONNX options with a command, command options with ONNX, a shell needed', async () => {
    const cases: [string[], RegExp][] = [
      [['--onnx', `${MLP}/model.onnx`, '--data', MLP, '--eval-cmd', EVAL], /give --onnx or --eval-cmd, not both/],
      [[], /needs a way to score: --onnx MODEL with validation data, or --eval-cmd/],
      [['--eval-cmd', EVAL, '--data', MLP, '--device', 'cpu'], /--data, --device: only with --onnx/],
      [['--onnx', `${MLP}/model.onnx`, '--data', MLP, '--jobs', '2', '--keep'], /--jobs, --keep: only with --eval-cmd/],
      [['--eval-cmd', EVAL, '--emit-onnx', join(tmp, 'x.onnx')], /--emit-onnx needs --onnx/],
      [['--eval-cmd', `${EVAL} > log.txt`], /needs a shell .* pass --shell/],
      [['--eval-cmd', 'python eval.py'], /it has no \{path\}/],
      [['--eval-cmd', EVAL, '--metric', 'f1'], /--metric f1: say whether higher or lower is better/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['sweep-window', `${MLP}/run`, ...args, '--windows', '2']);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('--shell runs the template with sh: pipes work, the path is quoted', async () => {
    const s = join(tmp, 'with space');
    mkdirSync(s);
    const r = await runCli([
      'sweep-window',
      `${MLP}/run`,
      '--eval-cmd',
      `${EVAL} 2>&1 | tail -n 1`,
      '--shell',
      '--windows',
      '8',
      '--scratch',
      s,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).best).toBe('lawa-8');
  });
});

describe('curve --eval-cmd', () => {
  it('gives the ONNX curve and its time to target (1e-6)', async () => {
    const args = ['curve', `${MLP}/run`, '--window', '5', '--every', '10', '--json'];
    const [onnx, cmd] = await Promise.all([
      runCli([...args, '--onnx', `${MLP}/model.onnx`, '--data', MLP, '--device', 'cpu']),
      runCli([...args, '--eval-cmd', EVAL, '--scratch', scratch(), '--jobs', '2']),
    ]);
    expect(onnx.code).toBe(0);
    expect(cmd.code).toBe(0);
    const a = JSON.parse(onnx.stdout);
    const b = JSON.parse(cmd.stdout);
    expect(b.steps).toEqual(a.steps);
    expect(b.time_to_target).toEqual(a.time_to_target);
    expect(Math.abs(b.target.value - a.target.value)).toBeLessThan(1e-6);
    for (const [i, m] of (b.methods as { points: { metrics: { loss: number } }[] }[]).entries()) {
      for (const [k, p] of m.points.entries())
        expect(Math.abs(p.metrics.loss - a.methods[i].points[k].metrics.loss)).toBeLessThan(1e-6);
    }
  });
});
