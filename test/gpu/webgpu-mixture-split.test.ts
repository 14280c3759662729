/**
 * The mixture on WebGPU with its stacks cut into pieces (a tiny limit, so every weight is
 * split and each weight's average joins dozens of piece sums in `run`): the digits-mlp LAWA
 * windows match PyTorch's float64 oracle and the same split on the CPU. Runs on lavapipe or a
 * real GPU (test/helpers/webgpu-env.ts), and skips and says why without either.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { ensureBuilt, ROOT } from '../helpers/cli.js';
import { webgpuEnv } from '../helpers/webgpu-env.js';

const RUN = join(ROOT, 'fixtures/runs/digits-mlp');
const SCRIPT = join(ROOT, 'test/helpers/mixture-eval.mjs');
/** 8 checkpoints x 256 float32 elements: the 128 x 64 first layer in 32 pieces. */
const TINY = 8 * 1024;
const WINDOWS = [2, 5, 8];
const want = (oracle as unknown as { cases: Record<string, { lawa_end: Record<string, { loss: number }> }> }).cases[
  'digits-mlp'
].lawa_end;

type Scores = Record<string, { loss: number; accuracy: number }>;

async function score(device: string, env: NodeJS.ProcessEnv): Promise<Scores> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [SCRIPT, RUN, device, String(TINY), WINDOWS.join(',')],
    { env, timeout: 240_000 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Scores;
}

const setup = webgpuEnv();

describe.skipIf('skip' in setup)('mixture split into pieces on WebGPU', () => {
  beforeAll(ensureBuilt);

  it('scores the LAWA windows as the oracle and the CPU split do', async () => {
    const env = 'env' in setup ? setup.env : process.env;
    const [gpu, cpu] = [await score('webgpu', env), await score('cpu', env)];
    for (const k of WINDOWS) {
      const name = `lawa-${k}`;
      expect(Math.abs(gpu[name].loss - want[String(k)].loss), `${name} against the oracle`).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(gpu[name].loss - cpu[name].loss), `${name} against the CPU`).toBeLessThanOrEqual(1e-4);
      expect(gpu[name].accuracy).toBe(cpu[name].accuracy);
    }
  }, 480_000);
});

if ('skip' in setup) {
  describe('mixture split into pieces on WebGPU', () => {
    it.skip(setup.skip, () => undefined);
  });
}
