/**
 * Metrics, accumulated over batches in float64: top-1 accuracy and mean cross-entropy over the
 * last axis of the logits (labels of -100 ignored, as PyTorch does), perplexity, mean squared
 * error, and the mean of a graph output (for graphs that compute their own loss).
 */
import type ort from 'onnxruntime-node';
import { AvgCkptError } from '../errors.js';
import { ONNX_DTYPE } from '../io/dtype.js';
import { floatValues } from '../io/onnx/model.js';
import type { Batch } from './data.js';

export type Metrics = Record<string, number>;

const IGNORE_INDEX = -100;

export function isKnownMetric(m: string): boolean {
  return m === 'accuracy' || m === 'loss' || m === 'perplexity' || m === 'mse' || (m.startsWith('output:') && m.length > 7);
}

/** Accuracy is maximized; losses, perplexity, errors and graph outputs are minimized. */
export function defaultDirection(metric: string): 'max' | 'min' {
  return metric === 'accuracy' ? 'max' : 'min';
}

/** Every metric the labels allow, plus the ranking one. */
export function metricsFor(labelKind: 'class' | 'target' | undefined, rank: string): string[] {
  const base = labelKind === 'class' ? ['loss', 'accuracy', 'perplexity'] : labelKind === 'target' ? ['mse'] : [];
  if (!isKnownMetric(rank)) throw new AvgCkptError('usage', `--metric must be accuracy, loss, perplexity, mse or output:NAME, got '${rank}'`);
  if ((rank === 'loss' || rank === 'accuracy' || rank === 'perplexity') && labelKind !== 'class') {
    throw new AvgCkptError('usage', `--metric ${rank} needs integer class labels: pass --labels FILE (or a tensor named "labels")`);
  }
  if (rank === 'mse' && labelKind === undefined) throw new AvgCkptError('usage', '--metric mse needs targets: pass --labels FILE');
  return base.includes(rank) ? base : [...base, rank];
}

function floats(t: ort.Tensor): Float32Array | Float64Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float64') return t.data as Float64Array;
  if (t.type === 'float16') {
    const d = t.data as Uint16Array;
    return floatValues(ONNX_DTYPE.FLOAT16, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  throw new AvgCkptError('data-mismatch', `graph output is ${t.type}, expected floats`);
}

export class MetricAccumulator {
  private lossSum = 0;
  private correct = 0;
  private counted = 0;
  private sqSum = 0;
  private sqCount = 0;
  private readonly outSum = new Map<string, { sum: number; count: number }>();

  /** `logits` names the output the label metrics read. */
  constructor(private readonly metrics: readonly string[], private readonly logits: string) {}

  /** The graph outputs the metrics read. */
  fetches(): string[] {
    const names = new Set<string>();
    for (const m of this.metrics) names.add(m.startsWith('output:') ? m.slice(7) : this.logits);
    return [...names];
  }

  add(outputs: Record<string, ort.Tensor>, batch: Batch): void {
    const needsClass = this.metrics.some((m) => m === 'loss' || m === 'accuracy' || m === 'perplexity');
    if (needsClass) this.addClassification(outputs[this.logits], batch);
    if (this.metrics.includes('mse')) {
      const o = floats(outputs[this.logits]);
      const y = batch.labels!.values;
      if (o.length !== y.length) throw new AvgCkptError('data-mismatch', `mse: output "${this.logits}" has ${o.length} values per batch, the targets ${y.length}`);
      for (let i = 0; i < o.length; i++) this.sqSum += (o[i] - y[i]) ** 2;
      this.sqCount += o.length;
    }
    for (const m of this.metrics) {
      if (!m.startsWith('output:')) continue;
      const v = floats(outputs[m.slice(7)]);
      const acc = this.outSum.get(m) ?? { sum: 0, count: 0 };
      // a scalar per batch (a loss the graph computes) is weighted by the batch's rows
      const weight = v.length === 1 ? batch.rows : 1;
      for (let i = 0; i < v.length; i++) acc.sum += v[i] * weight;
      acc.count += v.length === 1 ? batch.rows : v.length;
      this.outSum.set(m, acc);
    }
  }

  private addClassification(out: ort.Tensor, batch: Batch): void {
    const x = floats(out);
    const y = batch.labels!.values;
    const classes = out.dims[out.dims.length - 1];
    if (x.length !== y.length * classes) {
      throw new AvgCkptError('data-mismatch', `output "${this.logits}" has shape [${out.dims.join(', ')}], which does not fit labels of shape [${batch.labels!.dims.join(', ')}] (logits need the labels' shape plus a class axis)`);
    }
    for (let p = 0; p < y.length; p++) {
      const label = y[p];
      if (label === IGNORE_INDEX) continue;
      if (!Number.isInteger(label) || label < 0 || label >= classes) throw new AvgCkptError('data-mismatch', `label ${label} is not a class index in [0, ${classes})`);
      const o = p * classes;
      let max = -Infinity;
      let arg = 0;
      for (let c = 0; c < classes; c++) {
        if (x[o + c] > max) {
          max = x[o + c];
          arg = c;
        }
      }
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(x[o + c] - max);
      this.lossSum += max + Math.log(sum) - x[o + label];
      if (arg === label) this.correct++;
      this.counted++;
    }
  }

  result(): Metrics {
    const out: Metrics = {};
    for (const m of this.metrics) {
      if (m === 'loss') out.loss = this.lossSum / this.counted;
      else if (m === 'accuracy') out.accuracy = this.correct / this.counted;
      else if (m === 'perplexity') out.perplexity = Math.exp(this.lossSum / this.counted);
      else if (m === 'mse') out.mse = this.sqSum / this.sqCount;
      else {
        const a = this.outSum.get(m)!;
        out[m] = a.sum / a.count;
      }
    }
    return out;
  }
}
