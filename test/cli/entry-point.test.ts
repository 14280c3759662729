/**
 * bin/avg-ckpt.js sets UV_THREADPOOL_SIZE for its own process only (it sizes libuv's read pool
 * to the cores): a command that `--eval-cmd` runs sees the environment the user gave, with or
 * without the variable.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../helpers/cli.js';

const MLP = 'fixtures/runs/digits-mlp';
/** The candidate's "loss": the length of UV_THREADPOOL_SIZE as the command sees it (0 when unset). */
const probe = `node -e "console.log((process.env.UV_THREADPOOL_SIZE ?? '').length)" {path}`;

async function seen(env: Record<string, string>): Promise<number[]> {
  const r = await runCli(['sweep-window', `${MLP}/run`, '--eval-cmd', probe, '--windows', '2', '--json'], { env });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { candidates: { metrics: { loss: number } }[] }).candidates.map(
    (c) => c.metrics.loss,
  );
}

beforeAll(() => ensureBuilt());

describe('bin/avg-ckpt.js and UV_THREADPOOL_SIZE', () => {
  it("does not pass its own setting to the commands it runs, and passes the user's", async () => {
    const runner = process.env.UV_THREADPOOL_SIZE ?? '';
    expect(await seen({})).toEqual([runner.length, runner.length]);
    expect(await seen({ UV_THREADPOOL_SIZE: '12345' })).toEqual([5, 5]);
  });
});
