/**
 * Both engines against the PyTorch float64 oracle (fixtures/runs/oracle.json): every LAWA
 * window and EMA decay it lists, loss within 1e-5 and accuracy exact, and the same best
 * candidate. The F16 CNN also shows which rounding the oracle used: averages cast once to the
 * graph's float32 (rounding them to f16 first moves the loss by up to 2e-5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { Evaluator } from '../../src/eval/evaluator.js';
import { ema } from '../../src/recipes/ema.js';
import { lawa } from '../../src/recipes/lawa.js';
import type { WeightVector } from '../../src/recipes/weight-vector.js';
import { discoverSeries } from '../../src/series/discover.js';

interface Entry {
  loss: number;
  accuracy: number;
}
const cases = (
  oracle as unknown as { cases: Record<string, { lawa_end: Record<string, Entry>; ema_end: Record<string, Entry> }> }
).cases;
const VAL_ROWS = 500;

for (const run of ['digits-mlp', 'digits-cnn-fp16']) {
  // the mixture with 2 batches forms each average in a session of its own; with one run it is inlined
  for (const [engine, batchSize] of [
    ['mixture', 256],
    ['mixture', VAL_ROWS],
    ['materialize', 256],
    ['fed', 256],
    ['fed', VAL_ROWS],
  ] as const) {
    describe(`${run}, ${engine} engine, ${Math.ceil(VAL_ROWS / batchSize)} batches`, () => {
      const dir = `fixtures/runs/${run}`;
      let ev: Evaluator;
      let steps: number[];
      beforeAll(async () => {
        const s = await discoverSeries([`${dir}/run`]);
        steps = s.checkpoints.map((c) => c.step);
        ev = await Evaluator.create({
          onnx: `${dir}/model.onnx`,
          checkpoints: s.checkpoints,
          data: { dataDir: dir, batchSize },
          engine,
          device: 'cpu',
        });
      });
      afterAll(() => ev?.close());

      it('reproduces every oracle candidate and its best', async () => {
        expect(ev.engineKind).toBe(engine);
        const want: [WeightVector, Entry][] = [
          ...Object.entries(cases[run].lawa_end).map(([k, e]) => [lawa(steps, Number(k)), e] as [WeightVector, Entry]),
          ...Object.entries(cases[run].ema_end).map(([g, e]) => [ema(steps, Number(g)), e] as [WeightVector, Entry]),
        ];
        const losses: number[] = [];
        for (const [v, e] of want) {
          const m = await ev.score(v);
          expect(Math.abs(m.loss - e.loss), `${v.name} loss`).toBeLessThan(1e-5);
          // the oracle stores accuracy as a float32: compare counts of correct rows
          expect(Math.round(m.accuracy * VAL_ROWS), `${v.name} accuracy`).toBe(Math.round(e.accuracy * VAL_ROWS));
          expect(m.perplexity).toBeCloseTo(Math.exp(m.loss), 12);
          losses.push(m.loss);
        }
        const best = (xs: number[]) => xs.indexOf(Math.min(...xs));
        expect(want[best(losses)][0].name).toBe(want[best(want.map(([, e]) => e.loss))][0].name);
      });
    });
  }
}
