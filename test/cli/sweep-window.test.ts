/** `avg-ckpt sweep-window` end to end through bin/avg-ckpt.js, on the reference runs. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { readNpy } from '../../src/io/npy.js';
import { encodeModel, loadModel } from '../../src/io/onnx/model.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';

const MLP = 'fixtures/runs/digits-mlp';
const CNN = 'fixtures/runs/digits-cnn-fp16';
/** sweep-window on the bundled MLP run and its own validation data, then `extra`. */
const mlpSweep = (...extra: string[]) => [
  'sweep-window',
  `${MLP}/run`,
  '--onnx',
  `${MLP}/model.onnx`,
  '--data',
  MLP,
  ...extra,
];
const cases = (
  oracle as unknown as {
    cases: Record<string, { lawa_end: Record<string, { loss: number }>; ema_end: Record<string, { loss: number }> }>;
  }
).cases;
const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-sweep-'));
beforeAll(() => ensureBuilt());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('avg-ckpt sweep-window (CLI)', () => {
  it('digits-mlp: reports the oracle numbers, picks lawa-8, writes the winner and a baked ONNX', async () => {
    const report = join(tmp, 'mlp.json');
    const best = join(tmp, 'best.safetensors');
    const baked = join(tmp, 'best.onnx');
    const r = await runCli([
      ...mlpSweep(),
      '--windows',
      '2,4,8,16',
      '--ema',
      '0.8,0.9',
      '--report',
      report,
      '--write-best',
      best,
      '--emit-onnx',
      baked,
      '--device',
      'cpu',
      '--engine',
      'mixture',
    ]);
    expect(r.stderr).toMatch(/cpu/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\* lawa-8 +1060\.\.1200 \(8\)/m);
    expect(r.stdout).toMatch(/^time: setup \d+(\.\d+)? m?s, \d+(\.\d+)? m?s per candidate \(median of 7\)$/m);
    const j = JSON.parse(readFileSync(report, 'utf8'));
    expect(j).toMatchObject({
      metric: 'loss',
      device: 'cpu',
      engine: 'mixture',
      best: 'lawa-8',
      setup_ms: expect.any(Number),
      ms_per_candidate: expect.any(Number),
    });
    expect(j.candidates.every((c: { ms: unknown }) => typeof c.ms === 'number')).toBe(true);
    expect(j.candidates.map((c: { name: string }) => c.name)).toEqual([
      'raw-1200',
      'lawa-2',
      'lawa-4',
      'lawa-8',
      'lawa-16',
      'ema-0.8',
      'ema-0.9',
    ]);
    const lawa8 = j.candidates.find((c: { name: string }) => c.name === 'lawa-8');
    expect(lawa8).toMatchObject({
      method: 'lawa',
      params: { k: 8 },
      steps: [1060, 1080, 1100, 1120, 1140, 1160, 1180, 1200],
    });
    expect(Math.abs(lawa8.metrics.loss - cases['digits-mlp'].lawa_end['8'].loss)).toBeLessThan(1e-5);
    expect(Math.abs(j.candidates[6].metrics.loss - cases['digits-mlp'].ema_end['0.9'].loss)).toBeLessThan(1e-5);
    expect(existsSync(best)).toBe(true);
    // the baked graph serves the winner on its own
    const session = await ort.InferenceSession.create(encodeModel((await loadModel(baked)).proto));
    const x = await readNpy(`${MLP}/val_input.npy`);
    const y = await readNpy(`${MLP}/val_labels.npy`);
    const out = (await session.run({ input: new ort.Tensor('float32', x.data as Float32Array, [...x.shape]) })).logits
      .data as Float32Array;
    let loss = 0;
    for (let i = 0; i < 500; i++) {
      const row = Array.from(out.subarray(i * 10, i * 10 + 10));
      const max = Math.max(...row);
      loss +=
        max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) - row[Number((y.data as BigInt64Array)[i])];
    }
    expect(Math.abs(loss / 500 - cases['digits-mlp'].lawa_end['8'].loss)).toBeLessThan(1e-5);
    await session.release();
  });

  it('digits-cnn-fp16 with the materialize engine: averaging does not help, the raw checkpoint wins', async () => {
    // --device auto with no Vulkan (CI exports lavapipe's; an empty value hides it)
    const noVulkan = { LD_LIBRARY_PATH: '', VK_ICD_FILENAMES: '', VK_DRIVER_FILES: '' };
    const r = await runCli(
      [
        'sweep-window',
        `${CNN}/run`,
        '--onnx',
        `${CNN}/model.onnx`,
        '--input',
        `pixels=${CNN}/val_input.npy`,
        '--labels',
        `${CNN}/val_labels.npy`,
        '--engine',
        'materialize',
        '--windows',
        '2,4,8',
        '--ema',
        '0.6',
        '--json',
        '--device',
        'auto',
      ],
      { env: noVulkan },
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ engine: 'materialize', best: 'raw-600' });
    expect(Math.abs(j.candidates[3].metrics.loss - cases['digits-cnn-fp16'].lawa_end['8'].loss)).toBeLessThan(1e-5);
    if (j.device === 'cpu') {
      // one short line for the devices passed over, and Dawn never got to print its warnings
      expect(r.stderr.split('\n').filter((l) => /not used/.test(l))).toEqual([
        expect.stringMatching(/^avg-ckpt: cuda not used: .{1,120}; webgpu not used: .{1,80}$/),
      ]);
      expect(r.stderr).not.toMatch(/Warning|Vulkan:/);
    }
  });

  it('the fed and materialize engines sum on worker threads (forced on) with the losses of one thread', async () => {
    const runs = [
      ['digits-mlp', mlpSweep('--windows', '2,4,8', '--ema', '0.9', '--device', 'cpu', '--json')],
      [
        'digits-cnn-fp16',
        [
          ...['sweep-window', `${CNN}/run`, '--onnx', `${CNN}/model.onnx`, '--input', `pixels=${CNN}/val_input.npy`],
          ...['--labels', `${CNN}/val_labels.npy`, '--windows', '2,4,8', '--ema', '0.6', '--device', 'cpu', '--json'],
        ],
      ],
    ] as const;
    for (const [name, argv] of runs) {
      for (const engine of ['fed', 'materialize']) {
        const losses = async (env: Record<string, string>) => {
          const r = await runCli([...argv, '--engine', engine], { env });
          expect(r.code, r.stderr).toBe(0);
          const j = JSON.parse(r.stdout) as { candidates: { name: string; metrics: { loss: number } }[] };
          return Object.fromEntries(j.candidates.map((c) => [c.name, c.metrics.loss]));
        };
        const one = await losses({});
        // every merge splits its chunks over the threads, however small (a fresh worker per engine)
        const threaded = await losses({ AVG_CKPT_THREAD_MIN_WORK: '0' });
        expect(threaded, `${name} ${engine}`).toEqual(one);
        expect(Math.abs(threaded['lawa-8'] - cases[name].lawa_end['8'].loss)).toBeLessThan(1e-5);
      }
    }
  });

  it('refuses a graph with unmapped weights and an unavailable explicit device (exit 1), usage errors (exit 2)', async () => {
    const m = (await loadModel(`${MLP}/model.onnx`)).proto;
    const w = m.graph!.initializer!.find((t) => t.name === '4.bias')!;
    w.name = 'folded_bias';
    w.rawData = new Uint8Array(new Float32Array(10).fill(1).buffer);
    m.graph!.node![4].input![2] = 'folded_bias';
    const bad = join(tmp, 'stale.onnx');
    writeFileSync(bad, encodeModel(m));
    const r = await runCli(
      [...['sweep-window', `${MLP}/run`, '--onnx', bad, '--data', MLP, '--windows', '2'], '--quiet'],
      { inProcess: true },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /stale\.onnx: 1 of the graph.s 6 float initializers match no checkpoint tensor.* "folded_bias" \[10\]/,
    );
    expect(r.stdout).toBe('');
    const g = await runCli(mlpSweep('--device', 'webgpu', '--windows', '2', '--quiet'), { inProcess: true });
    if (g.code !== 0) {
      // no WebGPU adapter on this machine: a clear error, not a silent CPU run
      expect(g.code).toBe(1);
      expect(g.stderr).toMatch(/--device webgpu is not available: /);
    }
    const u = await runCli([...['sweep-window', `${MLP}/run`, '--onnx', `${MLP}/model.onnx`], '--quiet'], {
      inProcess: true,
    });
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/--data DIR or --input NAME=FILE/);
    // onnxruntime writes graphs to local files only: an s3:// graph output is refused, not made a local folder "s3:"
    const cwd = mkdtempSync(join(tmpdir(), 'avg-ckpt-emit-s3-'));
    const s3 = await runCli(
      [
        'sweep-window',
        join(process.cwd(), MLP, 'run'),
        '--onnx',
        join(process.cwd(), MLP, 'model.onnx'),
        '--data',
        join(process.cwd(), MLP),
        '--emit-onnx',
        's3://bucket/best.onnx',
        '--quiet',
      ],
      { inProcess: false, cwd },
    );
    expect(s3.code).toBe(2);
    expect(s3.stderr).toMatch(/--emit-onnx s3:\/\/bucket\/best\.onnx: the ONNX output must be a local path/);
    expect(existsSync(join(cwd, 's3:'))).toBe(false);
    rmSync(cwd, { recursive: true, force: true });
  });
});

describe('avg-ckpt sweep-window: the runtime failing during run', () => {
  it('a device limit is a one-line out-of-memory error (exit 1) saying what to do, anything else names the graph', async () => {
    // the WebGPU EP's message for an oversized mixture on lavapipe (docs/gpu.md), on the CPU here;
    // the device probe (input "x") still runs for real
    const proto = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype;
    const real = proto.run;
    let failure = new Error(
      "Non-zero status code returned while running Concat node. Name:'' Status Message: Too many storage buffers in shader. Current: 23, Max is 16",
    );
    const run = vi.spyOn(proto, 'run').mockImplementation(function (
      this: ort.InferenceSession,
      feeds: ort.InferenceSession.FeedsType,
      ...rest: unknown[]
    ) {
      return 'x' in feeds ? real.apply(this, [feeds, ...rest] as never) : Promise.reject(failure);
    } as never);
    try {
      const r = await runCli(mlpSweep('--windows', '2', '--device', 'cpu', '--engine', 'mixture', '--quiet'), {
        inProcess: true,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^avg-ckpt: fixtures\/runs\/digits-mlp\/model\.onnx: running the mixture \(2 checkpoints\) on cpu for raw-1200 ran out of memory or hit a device limit \(Concat node: Too many storage buffers .*\): use --engine fed .*--memory-budget.*--last N, --every N\)\n$/,
      );
      failure = new Error("Non-zero status code returned while running Gemm node. Name:'' Status Message: device lost");
      const m = await runCli(mlpSweep('--windows', '2', '--device', 'cpu', '--engine', 'materialize', '--quiet'), {
        inProcess: true,
      });
      expect(m.code).toBe(1);
      expect(m.stderr).toBe(
        'avg-ckpt: fixtures/runs/digits-mlp/model.onnx: onnxruntime failed running the graph on cpu for raw-1200: Gemm node: device lost\n',
      );
    } finally {
      run.mockRestore();
    }
  });
});
