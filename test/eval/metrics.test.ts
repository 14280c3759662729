/** Metrics against float64 references written out by hand. */
import { describe, expect, it } from 'vitest';
import type ort from 'onnxruntime-node';
import { MetricAccumulator, metricOver, metricsFor } from '../../src/eval/metrics.js';
import type { Batch } from '../../src/eval/data.js';

const tensor = (data: number[], dims: number[]) =>
  ({ type: 'float32', data: Float32Array.from(data), dims }) as unknown as ort.Tensor;
const batch = (labels: number[], dims: number[], rows = dims[0]): Batch => ({
  feeds: {},
  rows,
  labels: { values: Float64Array.from(labels), dims },
});
const ce = (logits: number[], label: number) => Math.log(logits.reduce((s, x) => s + Math.exp(x), 0)) - logits[label];

describe('metrics', () => {
  it('cross-entropy and accuracy over [N,T,V] logits, ignoring label -100, across batches', () => {
    const acc = new MetricAccumulator(['loss', 'accuracy', 'perplexity'], 'logits');
    // batch 1: N=1, T=2, V=3; batch 2: N=1, T=2, V=3 with one ignored position
    acc.add({ logits: tensor([2, 0, -1, 0.5, 0.25, 3], [1, 2, 3]) }, batch([0, 1], [1, 2]));
    acc.add({ logits: tensor([1, 1, 4, 0, 0, 0], [1, 2, 3]) }, batch([2, -100], [1, 2]));
    const losses = [ce([2, 0, -1], 0), ce([0.5, 0.25, 3], 1), ce([1, 1, 4], 2)];
    const r = acc.result();
    expect(r.loss).toBeCloseTo(losses.reduce((a, b) => a + b) / 3, 6);
    expect(r.accuracy).toBeCloseTo(2 / 3, 12);
    expect(r.perplexity).toBeCloseTo(Math.exp(r.loss), 12);
  });

  it('mse against float targets, and the row-weighted mean of a scalar graph output', () => {
    const acc = new MetricAccumulator(['mse', 'output:loss'], 'y');
    acc.add({ y: tensor([1, 2], [2, 1]), loss: tensor([0.5], []) }, batch([0, 4], [2, 1]));
    acc.add({ y: tensor([3], [1, 1]), loss: tensor([2], []) }, batch([3], [1, 1]));
    const r = acc.result();
    expect(r.mse).toBeCloseTo((1 + 4 + 0) / 3, 12);
    expect(r['output:loss']).toBeCloseTo((0.5 * 2 + 2 * 1) / 3, 12);
  });

  it('rejects labels outside the classes and metrics the labels cannot give', () => {
    const acc = new MetricAccumulator(['loss'], 'logits');
    expect(() => acc.add({ logits: tensor([0, 1], [1, 2]) }, batch([2], [1]))).toThrow(/not a class index/);
    expect(() => metricsFor(undefined, 'accuracy')).toThrow(/needs integer class labels/);
    expect(() => metricsFor('class', 'f1')).toThrow(/--metric must be/);
    expect(metricsFor('class', 'accuracy')).toEqual(['loss', 'accuracy', 'perplexity']);
  });

  it('keeps per-row sums: each row its own loss and correct count, and any subset (repeats allowed) recomputed from them', () => {
    // two rows of T=2 positions, V=3; then one row with an ignored position
    const x1 = [2, 0, -1, 0.5, 0.25, 3, 0, 1, 0, 1, 0, 0];
    const x2 = [1, 1, 4, 0, 0, 0];
    const acc2 = new MetricAccumulator(['loss', 'accuracy', 'perplexity'], 'logits');
    acc2.add({ logits: tensor(x1, [2, 2, 3]) }, batch([0, 1, 1, 2], [2, 2]));
    acc2.add({ logits: tensor(x2, [1, 2, 3]) }, batch([2, -100], [1, 2]));
    const per = acc2.perExample();
    const rowLoss = [ce([2, 0, -1], 0) + ce([0.5, 0.25, 3], 1), ce([0, 1, 0], 1) + ce([1, 0, 0], 2), ce([1, 1, 4], 2)];
    expect([...per.loss.count]).toEqual([2, 2, 1]);
    rowLoss.forEach((l, i) => expect(per.loss.sum[i]).toBeCloseTo(l, 6));
    expect([...per.accuracy.sum]).toEqual([1, 1, 1]);
    // rows 0, 0, 2: a bootstrap resample
    const want = (2 * rowLoss[0] + rowLoss[2]) / 5;
    expect(metricOver('loss', per, [0, 0, 2])).toBeCloseTo(want, 6);
    expect(metricOver('perplexity', per, [0, 0, 2])).toBeCloseTo(Math.exp(want), 6);
    expect(metricOver('accuracy', per, [1, 2])).toBeCloseTo(2 / 3, 12);
    expect(acc2.result().loss).toBeCloseTo(metricOver('loss', per), 12);
  });

  it('has no per-row values for a graph output that is one number per batch, and mixes a [1] output of a 1-row batch in', () => {
    const acc = new MetricAccumulator(['output:loss'], 'y');
    acc.add({ loss: tensor([0.5], []) }, batch([0, 4], [2, 1]));
    acc.add({ loss: tensor([2], [1]) }, batch([3], [1, 1]));
    expect(acc.perExample()['output:loss']).toBeUndefined();
    expect(acc.result()['output:loss']).toBeCloseTo((0.5 * 2 + 2) / 3, 12);
  });
});
