/**
 * The library-level evaluator: created once from a graph, validation data, a checkpoint series,
 * a device and an engine; `score(vector)` returns the metrics of that average. `sweep-window`
 * and `curve` are thin loops over it.
 */
import { execFileSync } from 'node:child_process';
import { freemem } from 'node:os';
import { AvgCkptError } from '../errors.js';
import { loadModel, type LoadedModel } from '../io/onnx/model.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import { bindModel, parseMapRule, type Binding } from './binding.js';
import { loadValidationData, type DataOptions, type ValidationData } from './data.js';
import { resolveDevice, type Device, type DeviceRequest } from './device.js';
import type { EngineKind, ScoringEngine } from './engine.js';
import { writeBakedModel, createMaterialize } from './materialize.js';
import { defaultDirection, metricsFor, MetricAccumulator, type Metrics } from './metrics.js';
import { createMixture, mixtureBytes, mixtureUnsupported } from './mixture.js';

export interface EvaluatorOptions {
  readonly onnx: string;
  /** The selected series in step order; the newest names the tensors and supplies integer tensors. */
  readonly checkpoints: readonly Checkpoint[];
  /** Steps the candidates will read (default: all); the mixture stacks only these. */
  readonly steps?: readonly number[];
  /** Every checkpoint of the run, to find the one the graph was exported from (default: `checkpoints`). */
  readonly series?: readonly Checkpoint[];
  readonly data: DataOptions;
  readonly device?: DeviceRequest;
  readonly engine?: EngineKind | 'auto';
  /** Bytes the mixture's stacked weights may take (default: half the free RAM, or the GPU's free memory). */
  readonly memoryBudget?: number;
  /** `REGEX=>REPLACEMENT` rules rewriting initializer names into checkpoint tensor names. */
  readonly maps?: readonly string[];
  readonly allowUnmapped?: boolean;
  /** The metric that ranks (default: loss with class labels, mse with float targets). */
  readonly metric?: string;
  readonly direction?: 'max' | 'min';
}

/** Free memory of the first GPU, from nvidia-smi when there is one. */
function gpuFreeBytes(): number | undefined {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=memory.free', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    const mib = Number(out.split('\n')[0]);
    return Number.isFinite(mib) && mib > 0 ? mib * 2 ** 20 : undefined;
  } catch {
    return undefined;
  }
}

export function defaultMemoryBudget(device: Device): number {
  const gpu = device === 'cuda' ? gpuFreeBytes() : undefined;
  return gpu !== undefined ? Math.floor(gpu * 0.8) : Math.floor(freemem() * 0.5);
}

function gib(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

export class Evaluator {
  private constructor(
    readonly model: LoadedModel,
    readonly binding: Binding,
    readonly data: ValidationData,
    readonly device: Device,
    /** Why the other devices were not used (auto). */
    readonly deviceNotes: readonly string[],
    private readonly engine: ScoringEngine,
    /** One line: why this engine. */
    readonly engineReason: string,
    /** Metrics reported for every candidate; `rankMetric` among them. */
    readonly metrics: readonly string[],
    readonly rankMetric: string,
    readonly direction: 'max' | 'min',
    private readonly logits: string,
    private readonly checkpoints: readonly Checkpoint[],
  ) {}

  get engineKind(): EngineKind {
    return this.engine.kind;
  }

  static async create(opts: EvaluatorOptions): Promise<Evaluator> {
    if (opts.checkpoints.length === 0) throw new AvgCkptError('empty-selection', 'no checkpoints to evaluate');
    const maps = (opts.maps ?? []).map(parseMapRule);
    const model = await loadModel(opts.onnx);
    const newest = opts.checkpoints[opts.checkpoints.length - 1];
    const binding = await bindModel(model, opts.series ?? opts.checkpoints, { maps, allowUnmapped: opts.allowUnmapped });
    const data = await loadValidationData(model, opts.data);
    const rankMetric = opts.metric ?? (data.labelKind === 'class' ? 'loss' : data.labelKind === 'target' ? 'mse' : undefined);
    if (rankMetric === undefined) throw new AvgCkptError('usage', 'no labels: pass --labels FILE, or --metric output:NAME for a graph that computes its own loss');
    const metrics = metricsFor(data.labelKind, rankMetric);
    const outputs = (model.proto.graph!.output ?? []).map((o) => o.name ?? '');
    for (const m of metrics) {
      if (m.startsWith('output:') && !outputs.includes(m.slice(7))) throw new AvgCkptError('usage', `--metric ${m}: the graph has no output "${m.slice(7)}" (it has ${outputs.join(', ')})`);
    }
    const logits = outputs.includes('logits') ? 'logits' : outputs[0];

    const { device, notes } = await resolveDevice(opts.device ?? 'auto');
    const wanted = new Set(opts.steps ?? opts.checkpoints.map((c) => c.step));
    const touched = opts.checkpoints.filter((c) => wanted.has(c.step));
    const budget = opts.memoryBudget ?? defaultMemoryBudget(device);
    const need = mixtureBytes(binding, touched.length);
    const unsupported = mixtureUnsupported(binding, newest);
    let kind = opts.engine ?? 'auto';
    let reason: string;
    if (kind === 'auto') {
      kind = unsupported === undefined && need <= budget ? 'mixture' : 'materialize';
      reason = unsupported !== undefined ? `materialize: the mixture cannot be built (${unsupported})`
        : kind === 'mixture' ? `mixture: ${touched.length} checkpoints x ${gib(need / Math.max(1, touched.length))} = ${gib(need)} fits the ${gib(budget)} memory budget`
        : `materialize: ${touched.length} checkpoints x ${gib(need / Math.max(1, touched.length))} = ${gib(need)} exceeds the ${gib(budget)} memory budget`;
    } else {
      if (kind === 'mixture' && unsupported !== undefined) throw new AvgCkptError('usage', `--engine mixture: ${unsupported}; use --engine materialize`);
      reason = `${kind}: chosen with --engine`;
    }
    const engine = kind === 'mixture' ? await createMixture(model, binding, touched, newest, device) : await createMaterialize(model, binding, opts.checkpoints, newest, device);
    const direction = opts.direction ?? defaultDirection(rankMetric);
    return new Evaluator(model, binding, data, device, notes, engine, reason, metrics, rankMetric, direction, logits, opts.checkpoints);
  }

  /** The metrics of the average `vector` describes. */
  async score(vector: WeightVector): Promise<Metrics> {
    const acc = new MetricAccumulator(this.metrics, this.logits);
    await this.engine.evaluate(vector, this.data.batches, acc.fetches(), (outputs, batch) => acc.add(outputs, batch));
    return acc.result();
  }

  /** True when `a` ranks strictly better than `b` on the ranking metric. */
  better(a: Metrics, b: Metrics): boolean {
    const x = a[this.rankMetric];
    const y = b[this.rankMetric];
    if (Number.isNaN(y)) return !Number.isNaN(x);
    return this.direction === 'max' ? x > y : x < y;
  }

  /** Writes the graph with `vector`'s average baked in. */
  async writeOnnx(vector: WeightVector, output: string, force = false): Promise<void> {
    await writeBakedModel(this.model, this.binding, this.checkpoints, this.checkpoints[this.checkpoints.length - 1], vector, output, force);
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}
