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
import { bindModel, exportedInitializers, parseMapRule, type Binding, type ExportedInitializer } from './binding.js';
import { loadValidationData, type DataOptions, type ValidationData } from './data.js';
import { resolveDevice, type Device, type DeviceRequest } from './device.js';
import { weightSlots, type EngineKind, type ScoringEngine } from './engine.js';
import { createFed } from './fed.js';
import { writeBakedModel, createMaterialize } from './materialize.js';
import { defaultDirection, metricsFor, MetricAccumulator, type Metrics, type PerExample } from './metrics.js';
import { createMixture, mixtureBytes, mixtureUnsupported } from './mixture.js';
import { ranksBetter, type Scorer } from './scorer.js';

export interface EvaluatorOptions {
  readonly onnx: string;
  /** The selected series in step order; the newest names the tensors and supplies integer tensors. */
  readonly checkpoints: readonly Checkpoint[];
  /** Steps the candidates will read (default: all); the engines read only these. */
  readonly steps?: readonly number[];
  /** The candidates to be scored, for the engine choice's cost model (default: each checkpoint alone). */
  readonly candidates?: readonly Pick<WeightVector, 'steps' | 'weights'>[];
  /** Every checkpoint of the run, to find the one the graph was exported from (default: `checkpoints`). */
  readonly series?: readonly Checkpoint[];
  readonly data: DataOptions;
  readonly device?: DeviceRequest;
  readonly engine?: EngineKind | 'auto';
  /** Bytes the mixture's stacked weights may take (default: `defaultMemoryBudget`). */
  readonly memoryBudget?: number;
  /** The mixture's largest stacked piece in bytes (default `MAX_STACK_BYTES`; tests make it small). */
  readonly maxStackBytes?: number;
  /** `REGEX=>REPLACEMENT` rules rewriting initializer names into checkpoint tensor names. */
  readonly maps?: readonly string[];
  readonly allowUnmapped?: boolean;
  /** The metric that ranks (default: loss with class labels, mse with float targets). */
  readonly metric?: string;
  readonly direction?: 'max' | 'min';
  /** Threads for the averages and for onnxruntime's operators (default: the cores). */
  readonly threads?: number;
}

/** Bytes of the tensors bound to weight slots, as one checkpoint stores them. */
function storedBytes(binding: Binding, ck: Checkpoint): number {
  return weightSlots(binding.weights).reduce((s, slot) => s + (ck.tensors.get(slot.first.source)?.byteLength ?? 0), 0);
}

/** Free memory of the first GPU, from nvidia-smi when there is one. */
function gpuFreeBytes(): number | undefined {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=memory.free', '--format=csv,noheader,nounits'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const mib = Number(out.split('\n')[0]);
    return Number.isFinite(mib) && mib > 0 ? mib * 2 ** 20 : undefined;
  } catch {
    return undefined;
  }
}

function gib(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * The mixture's default memory budget: half the free RAM on the CPU; 80% of the GPU's free memory
 * with CUDA; half of it on WebGPU, whose own copies of the stacks were never measured on a real
 * GPU. Without nvidia-smi (no NVIDIA card, or lavapipe in RAM), half the free RAM.
 */
export function defaultMemoryBudget(
  device: Device,
  gpuFree: () => number | undefined = gpuFreeBytes,
  ramFree: () => number = freemem,
): number {
  const gpu = device === 'cpu' ? undefined : gpuFree();
  if (gpu === undefined) return Math.floor(ramFree() * 0.5);
  return Math.floor(gpu * (device === 'cuda' ? 0.8 : 0.5));
}

export interface EngineFacts {
  readonly device: Device;
  readonly requested: EngineKind | 'auto';
  /** Checkpoints the mixture would stack. */
  readonly k: number;
  /** Bytes of all stacked weights, and the budget they must fit. */
  readonly need: number;
  readonly budget: number;
  /** Why the mixture cannot be built at all, if it cannot. */
  readonly unsupported?: string;
  /** Candidates to score, and the checkpoint bytes they read in all (each candidate its support). */
  readonly candidates: number;
  readonly reads: number;
  /** Bytes of the bound tensors in one checkpoint, as stored (what the mixture's setup reads K times). */
  readonly checkpointBytes: number;
}

/**
 * The cost model's rates, estimated from the 64 MB sweep bench on the 2-core machine
 * (docs/benchmarks.md; to be re-derived on a quiet machine): bytes per second of checkpoint the
 * mixture's setup reads and folds into its stacks, of stacked weights its MatMul reads per
 * candidate, and of checkpoint the fed engine averages per candidate. Both engines then run the
 * same forward passes, so only these costs decide.
 */
export const RATES = { mixtureSetup: 0.5e9, mixing: 10e9, averaging: 1.0e9 } as const;

function seconds(x: number): string {
  return x >= 10 ? `${x.toFixed(0)} s` : `${x.toFixed(1)} s`;
}

/**
 * Picks the engine and says why in one line; refuses a forced mixture that cannot work. auto:
 * the mixture when it can be built, fits the budget and its estimated extra time (setup plus
 * mixing per candidate) is below the fed engine's (averaging the candidates' supports); the fed
 * engine otherwise. materialize only when asked for (fed does the same averaging without a file
 * and a session per candidate).
 */
export function chooseEngine(f: EngineFacts): { kind: EngineKind; reason: string } {
  if (f.requested === 'mixture' && f.unsupported !== undefined)
    throw new AvgCkptError('usage', `--engine mixture: ${f.unsupported}; use --engine fed`);
  if (f.requested !== 'auto') return { kind: f.requested, reason: `${f.requested}: chosen with --engine` };
  const per = `${f.k} checkpoints x ${gib(f.need / Math.max(1, f.k))} = ${gib(f.need)}`;
  if (f.unsupported !== undefined)
    return { kind: 'fed', reason: `fed: the mixture cannot be built (${f.unsupported})` };
  if (f.need > f.budget)
    return { kind: 'fed', reason: `fed: the mixture's ${per} exceeds the ${gib(f.budget)} memory budget` };
  const mixture = (f.k * f.checkpointBytes) / RATES.mixtureSetup + (f.candidates * f.need) / RATES.mixing;
  const fed = f.reads / RATES.averaging;
  const estimate = `estimated ${seconds(mixture)} of setup and mixing against ${seconds(fed)} of averaging for ${f.candidates} candidates`;
  if (fed < mixture)
    return { kind: 'fed', reason: `fed: ${estimate} (the mixture's ${per} would fit the ${gib(f.budget)} budget)` };
  return { kind: 'mixture', reason: `mixture: ${per} fits the ${gib(f.budget)} memory budget; ${estimate}` };
}

export class Evaluator implements Scorer {
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
    /** Milliseconds spent creating the engine (for the mixture: its session, which stacks the checkpoints). */
    readonly setupMs: number,
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
    const binding = await bindModel(model, opts.series ?? opts.checkpoints, {
      maps,
      allowUnmapped: opts.allowUnmapped,
    });
    const data = await loadValidationData(model, opts.data);
    const rankMetric =
      opts.metric ?? (data.labelKind === 'class' ? 'loss' : data.labelKind === 'target' ? 'mse' : undefined);
    if (rankMetric === undefined)
      throw new AvgCkptError(
        'usage',
        'no labels: pass --labels FILE, or --metric output:NAME for a graph that computes its own loss',
      );
    const metrics = metricsFor(data.labelKind, rankMetric, data.labelSource);
    const outputs = (model.proto.graph!.output ?? []).map((o) => o.name ?? '');
    for (const m of metrics) {
      if (m.startsWith('output:') && !outputs.includes(m.slice(7)))
        throw new AvgCkptError(
          'usage',
          `--metric ${m}: the graph has no output "${m.slice(7)}" (it has ${outputs.join(', ')})`,
        );
    }
    const logits = outputs.includes('logits') ? 'logits' : outputs[0];

    const { device, notes } = await resolveDevice(opts.device ?? 'auto');
    const wanted = new Set(opts.steps ?? opts.checkpoints.map((c) => c.step));
    const touched = opts.checkpoints.filter((c) => wanted.has(c.step));
    const k = touched.length;
    const checkpointBytes = storedBytes(binding, newest);
    const candidates = opts.candidates ?? touched.map((c) => ({ steps: [c.step], weights: [1] }));
    const { kind, reason } = chooseEngine({
      device,
      requested: opts.engine ?? 'auto',
      k,
      need: mixtureBytes(binding, k),
      budget: opts.memoryBudget ?? defaultMemoryBudget(device),
      unsupported: mixtureUnsupported(binding, newest),
      candidates: candidates.length,
      reads: candidates.reduce((s, v) => s + v.weights.filter((w) => w !== 0).length, 0) * checkpointBytes,
      checkpointBytes,
    });
    const t0 = performance.now();
    const engine =
      kind === 'mixture'
        ? await createMixture(
            model,
            binding,
            touched,
            newest,
            device,
            data.batches.length,
            opts.maxStackBytes,
            opts.threads,
          )
        : kind === 'fed'
          ? await createFed(model, binding, touched, newest, device, opts.threads)
          : await createMaterialize(model, binding, touched, newest, device, opts.threads);
    const setupMs = performance.now() - t0;
    const direction = opts.direction ?? defaultDirection(rankMetric);
    return new Evaluator(
      model,
      binding,
      data,
      device,
      notes,
      engine,
      reason,
      setupMs,
      metrics,
      rankMetric,
      direction,
      logits,
      opts.checkpoints,
    );
  }

  /** The metrics of the average `vector` describes. */
  async score(vector: WeightVector): Promise<Metrics> {
    return (await this.scoreRows(vector)).metrics;
  }

  /** The metrics, and each validation row's sums behind them (for the bootstrap and --holdout). */
  async scoreRows(vector: WeightVector): Promise<{ metrics: Metrics; perExample: PerExample }> {
    const acc = new MetricAccumulator(this.metrics, this.logits, this.data.labelSource);
    await this.engine.evaluate(vector, this.data.batches, acc.fetches(), (outputs, batch) => acc.add(outputs, batch));
    return { metrics: acc.result(), perExample: acc.perExample() };
  }

  /** True when `a` ranks strictly better than `b` on the ranking metric. */
  better(a: Metrics, b: Metrics): boolean {
    return ranksBetter(a, b, this.rankMetric, this.direction);
  }

  /** The weights scored as exported (--allow-unmapped), for every report; undefined when there are none. */
  get unmapped(): ExportedInitializer[] | undefined {
    return this.binding.unmapped.length > 0 ? exportedInitializers(this.binding) : undefined;
  }

  /** What the user should know before the scores: devices passed over, the engine and why, data matching, unmapped weights. */
  get notes(): string[] {
    return [
      ...this.deviceNotes,
      `device ${this.device}; engine ${this.engineReason}`,
      ...this.data.notes,
      ...this.binding.unmapped.map((u) => `scoring "${u.initializer}" as exported (--allow-unmapped): ${u.why}`),
    ];
  }

  /** Writes the graph with `vector`'s average baked in; returns the files written (the graph, and its data past 2 GiB). */
  async writeOnnx(vector: WeightVector, output: string, force = false): Promise<string[]> {
    return writeBakedModel(
      this.model,
      this.binding,
      this.checkpoints,
      this.checkpoints[this.checkpoints.length - 1],
      vector,
      output,
      force,
    );
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}
