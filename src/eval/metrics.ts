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
  return (
    m === 'accuracy' || m === 'loss' || m === 'perplexity' || m === 'mse' || (m.startsWith('output:') && m.length > 7)
  );
}

/** Accuracy is maximized; losses, perplexity, errors and graph outputs are minimized. */
export function defaultDirection(metric: string): 'max' | 'min' {
  return metric === 'accuracy' ? 'max' : 'min';
}

/** Every metric the labels allow, plus the ranking one. */
export function metricsFor(labelKind: 'class' | 'target' | undefined, rank: string, labels?: LabelSource): string[] {
  const base = labelKind === 'class' ? ['loss', 'accuracy', 'perplexity'] : labelKind === 'target' ? ['mse'] : [];
  if (!isKnownMetric(rank))
    throw new AvgCkptError('usage', `--metric must be accuracy, loss, perplexity, mse or output:NAME, got '${rank}'`);
  if ((rank === 'loss' || rank === 'accuracy' || rank === 'perplexity') && labelKind !== 'class') {
    if (labels !== undefined)
      throw new AvgCkptError(
        'data-mismatch',
        `labels are ${labels.dtype}; ${rank === 'accuracy' ? 'accuracy' : 'loss'} and ${rank === 'accuracy' ? 'loss' : 'accuracy'} need integer class labels (save them as int64), or rank float targets by --metric mse`,
        { file: labels.file },
      );
    throw new AvgCkptError(
      'usage',
      `--metric ${rank} needs integer class labels: pass --labels FILE (or a tensor named "labels")`,
    );
  }
  if (rank === 'mse' && labelKind === undefined)
    throw new AvgCkptError('usage', '--metric mse needs targets: pass --labels FILE');
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

/** Per validation row: the sum a metric averages over that row, and how many values it has. */
export interface RowSums {
  readonly sum: Float64Array;
  /** 0 where the row has nothing to count (every position ignored). */
  readonly count: Float64Array;
}

/**
 * The per-example values behind each metric, row by row, in the data's order. A metric missing
 * here has no per-row values (a graph output that is one number per batch).
 */
export type PerExample = Readonly<Record<string, RowSums>>;

/**
 * A metric over some rows of `per` (row indexes, repeats allowed: a bootstrap resample; default:
 * every row), the way `MetricAccumulator.result` computes it over all of them.
 */
export function metricOver(metric: string, per: PerExample, rows?: ArrayLike<number>): number {
  const r = per[metric === 'perplexity' ? 'loss' : metric];
  if (r === undefined) return NaN;
  let sum = 0;
  let count = 0;
  if (rows === undefined) {
    for (let i = 0; i < r.sum.length; i++) {
      sum += r.sum[i];
      count += r.count[i];
    }
  } else {
    for (let j = 0; j < rows.length; j++) {
      sum += r.sum[rows[j]];
      count += r.count[rows[j]];
    }
  }
  return metric === 'perplexity' ? Math.exp(sum / count) : sum / count;
}

/** Every metric over some rows (see `metricOver`); metrics without per-row values are left out. */
export function metricsOver(metrics: readonly string[], per: PerExample, rows?: ArrayLike<number>): Metrics {
  const out: Metrics = {};
  for (const m of metrics) if (per[m === 'perplexity' ? 'loss' : m] !== undefined) out[m] = metricOver(m, per, rows);
  return out;
}

/** Where a labels file came from and what it holds, for messages about the labels. */
export interface LabelSource {
  readonly file: string;
  readonly dtype: string;
}

/** Grows per-row sums batch by batch. */
class RowColumn {
  private sum: number[] = [];
  private count: number[] = [];

  add(row: number, value: number, n: number): void {
    while (this.sum.length <= row) {
      this.sum.push(0);
      this.count.push(0);
    }
    this.sum[row] += value;
    this.count[row] += n;
  }

  done(rows: number): RowSums {
    this.add(rows - 1, 0, 0);
    return { sum: Float64Array.from(this.sum), count: Float64Array.from(this.count) };
  }
}

/**
 * Accumulates the metrics batch by batch (batches in the data's order, as both engines hand them
 * over), keeping each validation row's sums: the totals are sums of those, and the bootstrap and
 * the hold-out split resample or split them.
 */
export class MetricAccumulator {
  private readonly columns = new Map<string, RowColumn>();
  /** Outputs that are one number per batch: no per-row values, weighted by the batch's rows. */
  private readonly batchLevel = new Map<string, { sum: number; count: number }>();
  private rows = 0;

  /** `logits` names the output the label metrics read; `labels` says where the labels came from. */
  constructor(
    private readonly metrics: readonly string[],
    private readonly logits: string,
    private readonly labels?: LabelSource,
  ) {}

  /** The graph outputs the metrics read. */
  fetches(): string[] {
    const names = new Set<string>();
    for (const m of this.metrics) names.add(m.startsWith('output:') ? m.slice(7) : this.logits);
    return [...names];
  }

  private column(key: string): RowColumn {
    let c = this.columns.get(key);
    if (c === undefined) this.columns.set(key, (c = new RowColumn()));
    return c;
  }

  add(outputs: Record<string, ort.Tensor>, batch: Batch): void {
    const first = this.rows;
    this.rows += batch.rows;
    const needsClass = this.metrics.some((m) => m === 'loss' || m === 'accuracy' || m === 'perplexity');
    if (needsClass) this.addClassification(outputs[this.logits], batch, first);
    if (this.metrics.includes('mse')) this.addSquaredError(floats(outputs[this.logits]), batch, first);
    for (const m of this.metrics) {
      if (!m.startsWith('output:')) continue;
      const t = outputs[m.slice(7)];
      const v = floats(t);
      if (t.dims.length > 0 && t.dims[0] === batch.rows && v.length % batch.rows === 0) {
        const per = v.length / batch.rows;
        for (let i = 0; i < v.length; i++) this.column(m).add(first + Math.floor(i / per), v[i], 1);
      } else if (v.length === 1) {
        // a scalar per batch (a loss the graph computes) is weighted by the batch's rows
        const acc = this.batchLevel.get(m) ?? { sum: 0, count: 0 };
        acc.sum += v[0] * batch.rows;
        acc.count += batch.rows;
        this.batchLevel.set(m, acc);
      } else {
        throw new AvgCkptError(
          'data-mismatch',
          `graph output "${m.slice(7)}" has ${v.length} values for a batch of ${batch.rows} rows: neither one per batch nor the same number per row`,
        );
      }
    }
  }

  private addSquaredError(o: Float32Array | Float64Array, batch: Batch, first: number): void {
    const y = batch.labels!.values;
    if (o.length !== y.length) {
      const counts = `${y.length / batch.rows} per row, but output "${this.logits}" gives ${o.length / batch.rows} values per row`;
      if (this.labels === undefined) throw new AvgCkptError('data-mismatch', `mse: the targets have ${counts}`);
      const hint =
        this.labels.dtype.startsWith('float') && o.length > y.length
          ? '; if they are class indexes, save them as integers (int64) to get loss and accuracy'
          : '';
      throw new AvgCkptError(
        'data-mismatch',
        `labels are ${this.labels.dtype}, so they are read as regression targets (mse): ${counts}${hint}`,
        { file: this.labels.file },
      );
    }
    const per = y.length / batch.rows;
    for (let i = 0; i < o.length; i++) this.column('mse').add(first + Math.floor(i / per), (o[i] - y[i]) ** 2, 1);
  }

  private addClassification(out: ort.Tensor, batch: Batch, first: number): void {
    const x = floats(out);
    const y = batch.labels!.values;
    const classes = out.dims[out.dims.length - 1];
    const from = this.labels === undefined ? '' : ` (${this.labels.file})`;
    if (x.length !== y.length * classes) {
      throw new AvgCkptError(
        'data-mismatch',
        `output "${this.logits}" has shape [${out.dims.join(', ')}], which does not fit labels${from} of shape [${batch.labels!.dims.join(', ')}] (logits need the labels' shape plus a class axis)`,
      );
    }
    const per = y.length / batch.rows;
    const loss = this.column('loss');
    const accuracy = this.column('accuracy');
    for (let p = 0; p < y.length; p++) {
      const label = y[p];
      if (label === IGNORE_INDEX) continue;
      if (!Number.isInteger(label) || label < 0 || label >= classes)
        throw new AvgCkptError('data-mismatch', `label ${label}${from} is not a class index in [0, ${classes})`);
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
      const row = first + Math.floor(p / per);
      loss.add(row, max + Math.log(sum) - x[o + label], 1);
      accuracy.add(row, arg === label ? 1 : 0, 1);
    }
  }

  /** Each row's sums, for the metrics that have them (not those with a value per batch). */
  perExample(): PerExample {
    const out: Record<string, RowSums> = {};
    for (const [key, c] of this.columns) if (!this.batchLevel.has(key)) out[key] = c.done(this.rows);
    return out;
  }

  result(): Metrics {
    const out = metricsOver(this.metrics, this.perExample());
    for (const [m, a] of this.batchLevel) {
      const rows = this.columns.get(m)?.done(this.rows);
      out[m] =
        (a.sum + (rows?.sum.reduce((x, y) => x + y, 0) ?? 0)) /
        (a.count + (rows?.count.reduce((x, y) => x + y, 0) ?? 0));
    }
    // keep the metrics' own order
    return Object.fromEntries(this.metrics.map((m) => [m, out[m] ?? NaN]));
  }
}
