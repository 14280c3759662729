/** What the scoring engines share: their interface, weight slots, and onnxruntime's errors. */
import type ort from 'onnxruntime-node';
import { AvgCkptError } from '../errors.js';
import type { WeightVector } from '../recipes/weight-vector.js';
import type { Checkpoint } from '../series/checkpoint.js';
import type { Batch } from './data.js';
import type { BoundTensor } from './binding.js';
import type { Device } from './device.js';

export type EngineKind = 'mixture' | 'materialize' | 'fed';

/** onnxruntime messages that mean the memory or a device limit ran out, not a bad graph. */
const OUT_OF_MEMORY =
  /Too many storage buffers|Failed to allocate|out of memory|bad_alloc|Cannot allocate|Array buffer allocation failed/i;

/**
 * The part of an onnxruntime message a user can act on: `Concat node: <status>` without the
 * source path and C++ signature ORT puts in front of the status.
 */
export function ortMessage(e: unknown): string {
  const msg = String((e as Error)?.message ?? e).trim();
  const run = /running (\S+) node\..*?Status Message:\s*(.*)/s.exec(msg);
  let text = run ? run[2] : msg;
  text = text.replace(/^\S+\.(?:cc|cpp|h):\d+\s+/, '').replace(/^[\w:*&<>, ]+\([^()]*\)\s+(?=\S)/, '');
  text = text.split('\n')[0].trim();
  return (run ? `${run[1]} node: ${text}` : text).slice(0, 300);
}

export interface OrtContext {
  /** The ONNX file the session was built from. */
  readonly file: string;
  /** What failed, e.g. `running the mixture graph on webgpu (lawa-8)`. */
  readonly doing: string;
  /** What to do when memory or a device limit ran out. */
  readonly memoryAdvice: string;
}

/**
 * What to do when an engine that holds about one model of weights (fed, materialize) runs out:
 * only the activations, or the device, can give way.
 */
export function oneModelAdvice(device: Device): string {
  return device === 'cpu' ? 'use a smaller --batch-size' : 'use a smaller --batch-size, or --device cpu';
}

/**
 * An onnxruntime failure as a one-line error: memory and device limits become `out-of-memory`
 * with what to do, anything else `invalid-onnx` naming the graph (exit 1, never a stack).
 */
export function ortError(e: unknown, ctx: OrtContext): AvgCkptError {
  if (e instanceof AvgCkptError) return e;
  const msg = ortMessage(e);
  if (OUT_OF_MEMORY.test(String((e as Error)?.message ?? e)))
    return new AvgCkptError(
      'out-of-memory',
      `${ctx.doing} ran out of memory or hit a device limit (${msg}): ${ctx.memoryAdvice}`,
      { file: ctx.file, cause: e },
    );
  return new AvgCkptError('invalid-onnx', `onnxruntime failed ${ctx.doing}: ${msg}`, { file: ctx.file, cause: e });
}

/** `session.run`, with failures turned into `ortError`s. */
export async function runSession(
  session: ort.InferenceSession,
  feeds: ort.InferenceSession.FeedsType,
  fetches: readonly string[],
  ctx: OrtContext,
): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feeds, [...fetches]);
  } catch (e) {
    throw ortError(e, ctx);
  }
}

export interface ScoringEngine {
  readonly kind: EngineKind;
  /** Runs every batch with the vector's average, handing each batch's outputs to `each`. */
  evaluate(
    vector: WeightVector,
    batches: readonly Batch[],
    fetches: readonly string[],
    each: (outputs: Record<string, ort.Tensor>, batch: Batch) => void,
  ): Promise<void>;
  close(): Promise<void>;
}

/** Bound initializers that compute the same values (tied or aliased weights) share one slot. */
export interface WeightSlot {
  readonly key: string;
  readonly first: BoundTensor;
  readonly members: readonly BoundTensor[];
}

export function weightSlots(weights: readonly BoundTensor[]): WeightSlot[] {
  const slots = new Map<string, { key: string; first: BoundTensor; members: BoundTensor[] }>();
  for (const w of weights) {
    const key = `${w.source}|${w.transform}|${w.dims.join('x')}|${w.type}`;
    const s = slots.get(key);
    if (s) s.members.push(w);
    else slots.set(key, { key, first: w, members: [w] });
  }
  return [...slots.values()];
}

/** The checkpoints a vector reads, with their weights. */
export function supportOf(
  vector: WeightVector,
  byStep: ReadonlyMap<number, Checkpoint>,
): { ck: Checkpoint; w: number }[] {
  const out: { ck: Checkpoint; w: number }[] = [];
  vector.steps.forEach((step, i) => {
    const w = vector.weights[i];
    if (w === 0) return;
    const ck = byStep.get(step);
    if (ck === undefined)
      throw new AvgCkptError(
        'internal',
        `${vector.name}: step ${step} is not among the checkpoints the evaluator was built for`,
      );
    out.push({ ck, w });
  });
  return out;
}
