/**
 * Both engines score the plainLM PyTorch run (fixtures/pytorch/plainlm: `ckpt_step_<N>.pth` with
 * optimizer state, a tied head, and a torch.onnx export whose `onnx::MatMul_*` initializers are
 * folded transposes bound by value) as PyTorch did: every recipe of oracle.json, with the weights
 * oracle.json gives, loss within 1e-5, accuracy exact, and the same best pick.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import oracle from '../../fixtures/pytorch/oracle.json' with { type: 'json' };
import { Evaluator } from '../../src/eval/evaluator.js';
import { weightVector } from '../../src/recipes/weight-vector.js';
import { discoverSeries } from '../../src/series/discover.js';

const DIR = 'fixtures/pytorch/plainlm';
const plain = oracle.cases.plainlm;
/** Rows x tokens of the validation set: accuracy is a fraction of all tokens. */
const TOKENS = 48 * 64;

for (const [engine, batchSize] of [
  ['mixture', 16],
  ['mixture', 48],
  ['materialize', 16],
  ['fed', 16],
] as const) {
  describe(`plainLM (.pth), ${engine} engine, batches of ${batchSize}`, () => {
    let ev: Evaluator;
    beforeAll(async () => {
      const s = await discoverSeries([`${DIR}/run`]);
      expect(s.checkpoints.map((c) => c.step)).toEqual(plain.steps);
      ev = await Evaluator.create({
        onnx: `${DIR}/model.onnx`,
        checkpoints: s.checkpoints,
        data: { inputs: { input_ids: `${DIR}/val_input_ids.npy` }, labels: `${DIR}/val_labels.npy`, batchSize },
        engine,
        device: 'cpu',
      });
    });
    afterAll(() => ev?.close());

    it('reproduces every oracle recipe and its best', async () => {
      const names = Object.keys(plain.recipes) as (keyof typeof plain.recipes)[];
      const losses: number[] = [];
      for (const name of names) {
        const m = await ev.score(weightVector(name, 'weights', {}, plain.steps, plain.recipes[name]));
        const want = plain.metrics[name];
        expect(Math.abs(m.loss - want.loss), `${name} loss`).toBeLessThan(1e-5);
        expect(Math.round(m.accuracy * TOKENS), `${name} accuracy`).toBe(Math.round(want.accuracy * TOKENS));
        losses.push(m.loss);
      }
      const best = (xs: number[]) => names[xs.indexOf(Math.min(...xs))];
      expect(best(losses)).toBe(best(names.map((n) => plain.metrics[n].loss)));
    });
  });
}
