/**
 * The mixture's stacks cut into pieces (MAX_STACK_BYTES, made tiny here so that every weight is
 * split): no stacked piece is over the limit, and the split sessions score the reference runs as
 * PyTorch's float64 oracles did (float32 MLP, F16 CNN cast once, plainLM's folded transposes and
 * tied head), in one run and in several batches, and as the unsplit mixture does.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import pytorchOracle from '../../fixtures/pytorch/oracle.json' with { type: 'json' };
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { bindModel } from '../../src/eval/binding.js';
import type { DataOptions } from '../../src/eval/data.js';
import { Evaluator } from '../../src/eval/evaluator.js';
import { MIXTURE_INPUT, mixtureGraphs, stackPieces } from '../../src/eval/mixture.js';
import { loadModel, onnx } from '../../src/io/onnx/model.js';
import { lawa } from '../../src/recipes/lawa.js';
import { weightVector, type WeightVector } from '../../src/recipes/weight-vector.js';
import { discoverSeries } from '../../src/series/discover.js';

/** Small enough to cut every matrix of the reference runs into dozens of pieces. */
const TINY = 8 * 1024;

describe('stackPieces', () => {
  it('covers every element once, in order, each stack within the limit unless one element per row is over it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 64 }),
        fc.constantFrom(4, 8),
        fc.integer({ min: 1, max: 1 << 16 }),
        (n, k, bytes, max) => {
          const pieces = stackPieces(n, k, bytes, max);
          let next = 0;
          for (const p of pieces) {
            expect(p.start).toBe(next);
            expect(p.count).toBeGreaterThan(0);
            if (p.count > 1) expect(p.count * k * bytes).toBeLessThanOrEqual(max);
            next += p.count;
          }
          expect(next).toBe(n);
          // as few pieces as the limit allows
          expect(pieces.length).toBe(Math.ceil(n / Math.max(1, Math.floor(max / (k * bytes)))));
        },
      ),
    );
  });
});

interface Case {
  readonly dir: string;
  readonly onnx: string;
  readonly data: DataOptions;
  /** Rows (or tokens) the accuracy is a fraction of. */
  readonly rows: number;
  readonly batchSizes: readonly number[];
  /** The candidates over the 8 newest checkpoints, with the oracle's loss and accuracy. */
  readonly want: (steps: readonly number[]) => [WeightVector, { loss: number; accuracy: number }][];
}

type RunOracle = Record<string, { lawa_end: Record<string, { loss: number; accuracy: number }> }>;
const runs = (oracle as unknown as { cases: RunOracle }).cases;
const lawaEnd = (run: string) => (steps: readonly number[]) =>
  Object.entries(runs[run].lawa_end)
    .filter(([k]) => Number(k) <= 8)
    .map(([k, e]) => [lawa([...steps], Number(k)), e] as [WeightVector, { loss: number; accuracy: number }]);
const plain = pytorchOracle.cases.plainlm;
const PLAIN = 'fixtures/pytorch/plainlm';

const CASES: Record<string, Case> = {
  'digits-mlp (float32)': {
    dir: 'fixtures/runs/digits-mlp/run',
    onnx: 'fixtures/runs/digits-mlp/model.onnx',
    data: { dataDir: 'fixtures/runs/digits-mlp' },
    rows: 500,
    batchSizes: [500, 256],
    want: lawaEnd('digits-mlp'),
  },
  'digits-cnn-fp16 (F16 stacks cast once)': {
    dir: 'fixtures/runs/digits-cnn-fp16/run',
    onnx: 'fixtures/runs/digits-cnn-fp16/model.onnx',
    data: { dataDir: 'fixtures/runs/digits-cnn-fp16' },
    rows: 500,
    batchSizes: [500],
    want: lawaEnd('digits-cnn-fp16'),
  },
  'plainLM .pth (transposed folds, tied head)': {
    dir: `${PLAIN}/run`,
    onnx: `${PLAIN}/model.onnx`,
    data: { inputs: { input_ids: `${PLAIN}/val_input_ids.npy` }, labels: `${PLAIN}/val_labels.npy` },
    rows: 48 * 64,
    batchSizes: [48, 16],
    want: (steps) =>
      (Object.keys(plain.recipes) as (keyof typeof plain.recipes)[]).map((name) => [
        weightVector(name, 'weights', {}, [...steps], plain.recipes[name]),
        plain.metrics[name],
      ]),
  },
};

for (const [name, c] of Object.entries(CASES)) {
  describe(`mixture split into pieces: ${name}`, () => {
    it(`no stacked piece is over ${TINY} bytes, and every weight is cut`, async () => {
      const checkpoints = (await discoverSeries([c.dir])).checkpoints.slice(-8);
      const model = await loadModel(c.onnx);
      const binding = await bindModel(model, checkpoints);
      const { scorer } = await mixtureGraphs(model, binding, checkpoints, checkpoints[7], false, TINY);
      const graph = onnx.ModelProto.decode(scorer).graph!;
      const inits = new Map(graph.initializer!.map((t) => [t.name!, t]));
      const stacks = graph.node!.filter((n) => n.opType === 'Concat' && inits.has(n.input![0]));
      const mixes = graph.node!.filter((n) => n.opType === 'MatMul' && n.input![0] === MIXTURE_INPUT);
      expect(stacks.length).toBe(mixes.length);
      for (const s of stacks) {
        expect(s.input!.length).toBe(8);
        const row = inits.get(s.input![0])!;
        const stored = Number(row.externalData!.find((e) => e.key === 'length')!.value) / Number(row.dims![1]);
        expect(8 * Number(row.dims![1]) * Math.max(4, stored)).toBeLessThanOrEqual(TINY);
      }
      // every weight of more than TINY / (8 x 4) elements is stacked in several pieces
      const big = binding.weights.filter((w) => w.dims.reduce((a, b) => a * b, 1) > TINY / 32);
      expect(big.length).toBeGreaterThan(0);
      expect(mixes.length).toBeGreaterThan(binding.weights.length + big.length);
    });

    for (const batchSize of c.batchSizes) {
      it(`batches of ${batchSize}: the oracle's metrics, and the unsplit mixture's`, async () => {
        const checkpoints = (await discoverSeries([c.dir])).checkpoints.slice(-8);
        const steps = checkpoints.map((ck) => ck.step);
        const open = (maxStackBytes?: number) =>
          Evaluator.create({
            onnx: c.onnx,
            checkpoints,
            data: { ...c.data, batchSize },
            engine: 'mixture',
            device: 'cpu',
            maxStackBytes,
          });
        const split = await open(TINY);
        const whole = await open();
        try {
          for (const [v, e] of c.want(steps)) {
            const m = await split.score(v);
            expect(Math.abs(m.loss - e.loss), `${v.name} loss`).toBeLessThan(1e-5);
            expect(Math.round(m.accuracy * c.rows), `${v.name} accuracy`).toBe(Math.round(e.accuracy * c.rows));
            // the same float32 sums per element, only cut differently
            expect(Math.abs(m.loss - (await whole.score(v)).loss), `${v.name} split against whole`).toBeLessThan(1e-9);
          }
        } finally {
          await split.close();
          await whole.close();
        }
      });
    }
  });
}
