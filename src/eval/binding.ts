/**
 * Binding checkpoint tensors to the graph's initializers. By name first (with common wrapper
 * prefixes stripped, and the user's --map rules); then, for what exporters renamed or
 * constant-folded, by value against the checkpoint whose values the graph holds (identity,
 * reshape, 2-D transpose). A float initializer left unbound would be scored with stale values,
 * so it is refused unless the user allows it.
 */
import { AvgCkptError } from '../errors.js';
import { FilePool } from '../io/storage/file-pool.js';
import {
  dimsOf,
  dtypeName,
  floatValues,
  isFloatType,
  loadModel,
  numel,
  tensorBytes,
  type LoadedModel,
  type TensorProto,
} from '../io/onnx/model.js';
import { isFloatKind, isReadableFloat, ONNX_DTYPE } from '../io/dtype.js';
import type { Checkpoint, TensorSource } from '../series/checkpoint.js';
import { readFloat64 } from './tensor-read.js';

export type Transform = 'identity' | 'reshape' | 'transpose';
export type Via = 'name' | 'map' | 'value';

export interface BoundTensor {
  readonly initializer: string;
  /** ONNX element type of the initializer. */
  readonly type: number;
  readonly dims: readonly number[];
  /** The checkpoint tensor it takes its values from. */
  readonly source: string;
  readonly transform: Transform;
  readonly via: Via;
}

export interface UnboundTensor {
  readonly initializer: string;
  readonly type: number;
  readonly dims: readonly number[];
  readonly why: string;
}

export interface Binding {
  /** Float initializers computed from the checkpoints. */
  readonly weights: readonly BoundTensor[];
  /** Integer initializers named like checkpoint tensors: taken from the newest checkpoint. */
  readonly integers: readonly BoundTensor[];
  /** Float scalars that match no checkpoint tensor (folded constants such as a scale). */
  readonly constants: readonly UnboundTensor[];
  /** Float initializers that match nothing: scored as exported only with --allow-unmapped. */
  readonly unmapped: readonly UnboundTensor[];
  /** Step of the checkpoint whose values the graph holds, when found. */
  readonly holderStep?: number;
}

export interface MapRule {
  readonly pattern: RegExp;
  readonly replacement: string;
}

/** Parses `REGEX=>REPLACEMENT` (rewrites initializer names into checkpoint tensor names). */
export function parseMapRule(text: string): MapRule {
  const at = text.indexOf('=>');
  if (at <= 0) throw new AvgCkptError('usage', `--map must look like 'REGEX=>REPLACEMENT', got '${text}'`);
  try {
    return { pattern: new RegExp(text.slice(0, at)), replacement: text.slice(at + 2) };
  } catch (e) {
    throw new AvgCkptError('usage', `--map '${text}': ${(e as Error).message}`);
  }
}

const PREFIXES = ['_orig_mod.', 'module.', 'model.'];

/** Strips wrapper prefixes (torch.compile, DataParallel, Hugging Face base models) repeatedly. */
export function normalizeName(name: string): string {
  for (let changed = true; changed; ) {
    changed = false;
    for (const p of PREFIXES) {
      if (name.startsWith(p)) {
        name = name.slice(p.length);
        changed = true;
      }
    }
  }
  return name;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function byName(
  init: string,
  ref: Checkpoint,
  normalized: Map<string, string[]>,
  rules: readonly MapRule[],
): { source: TensorSource; via: Via } | undefined {
  for (const r of rules) {
    if (r.pattern.test(init)) {
      const name = init.replace(r.pattern, r.replacement);
      const t = ref.tensors.get(name) ?? ref.tensors.get(normalized.get(normalizeName(name))?.[0] ?? '');
      return t === undefined ? undefined : { source: t, via: 'map' };
    }
  }
  const exact = ref.tensors.get(init);
  if (exact !== undefined) return { source: exact, via: 'name' };
  const same = normalized.get(normalizeName(init));
  return same?.length === 1 ? { source: ref.tensors.get(same[0])!, via: 'name' } : undefined;
}

/** Whether graph values `g` equal checkpoint values `c` under a transform, to the graph's precision. */
function valuesMatch(
  g: Float32Array,
  type: number,
  c: Float64Array,
  transform: Transform,
  cdims: readonly number[],
): boolean {
  if (g.length !== c.length) return false;
  // a float32/float64 graph holds the checkpoint's values exactly; 16-bit graphs round once
  const rel = type === ONNX_DTYPE.BFLOAT16 ? 2 ** -8 : type === ONNX_DTYPE.FLOAT16 ? 2 ** -11 : 0;
  const [rows, cols] = cdims;
  for (let i = 0; i < g.length; i++) {
    const ci = transform === 'transpose' ? (i % rows) * cols + Math.floor(i / rows) : i;
    const want = c[ci];
    const got = g[i];
    if (
      rel === 0
        ? got !== Math.fround(want) && !(Number.isNaN(got) && Number.isNaN(want))
        : Math.abs(got - want) > rel * Math.abs(want) + 2 ** -24
    )
      return false;
  }
  return true;
}

function isConstantValued(v: Float32Array): boolean {
  return v.every((x) => x === v[0]);
}

export interface BindOptions {
  readonly maps?: readonly MapRule[];
  readonly allowUnmapped?: boolean;
}

/**
 * Binds the graph to a series (in step order; the newest names the tensors). Throws
 * `unmapped-initializers` when float initializers stay unbound and `allowUnmapped` is not set.
 */
export async function bindModel(
  model: LoadedModel,
  series: readonly Checkpoint[],
  opts: BindOptions = {},
): Promise<Binding> {
  const ref = series[series.length - 1];
  const normalized = new Map<string, string[]>();
  for (const name of ref.tensors.keys()) {
    const k = normalizeName(name);
    normalized.set(k, [...(normalized.get(k) ?? []), name]);
  }
  const weights: BoundTensor[] = [];
  const integers: BoundTensor[] = [];
  const pending: TensorProto[] = [];
  for (const t of model.proto.graph!.initializer ?? []) {
    const name = t.name ?? '';
    const type = t.dataType ?? 0;
    const dims = dimsOf(t);
    const hit = byName(name, ref, normalized, opts.maps ?? []);
    const fits =
      hit !== undefined &&
      numel(hit.source.shape) === numel(dims) &&
      isFloatKind(hit.source.dtype) === isFloatType(type);
    if (fits) {
      const bound = {
        initializer: name,
        type,
        dims,
        source: hit.source.name,
        transform: sameDims(dims, hit.source.shape) ? 'identity' : 'reshape',
        via: hit.via,
      } as const;
      (isFloatType(type) ? weights : integers).push(bound);
    } else if (isFloatType(type)) {
      pending.push(t);
    }
  }
  const pool = new FilePool(8);
  try {
    const holder = await findHolder(model, series, weights, pool);
    const found =
      pending.length > 0 && holder !== undefined
        ? await bindByValue(model, holder, pending, pool)
        : new Map<string, BoundTensor | string>();
    const constants: UnboundTensor[] = [];
    const unmapped: UnboundTensor[] = [];
    for (const t of pending) {
      const r = found.get(t.name ?? '');
      const dims = dimsOf(t);
      if (typeof r === 'object') {
        weights.push(r);
        continue;
      }
      const why =
        r ??
        (holder === undefined
          ? 'no checkpoint of the run holds the values the graph was exported with'
          : 'matches no checkpoint tensor by name or value');
      (numel(dims) <= 1 ? constants : unmapped).push({ initializer: t.name ?? '', type: t.dataType ?? 0, dims, why });
    }
    // nothing bound: every candidate would be the export itself, whatever --allow-unmapped says
    if (weights.length === 0) throw mismatchError(model.path, [...unmapped, ...constants], ref);
    if (unmapped.length > 0 && !opts.allowUnmapped)
      throw unmappedError(model.path, unmapped, weights.length + constants.length + unmapped.length);
    return { weights, integers, constants, unmapped, holderStep: holder?.step };
  } finally {
    await pool.close();
  }
}

/**
 * The checkpoint (newest first) whose values the name-bound weights hold, judged on the smallest
 * of them whose values are not all equal (LayerNorm gains of 1 would match any checkpoint). Small,
 * because the first one was often the embedding: read whole, in float64, it left hundreds of MB
 * of garbage that no collection freed before the mixture's session was created.
 */
async function findHolder(
  model: LoadedModel,
  series: readonly Checkpoint[],
  bound: readonly BoundTensor[],
  pool: FilePool,
): Promise<Checkpoint | undefined> {
  const values = async (b: BoundTensor) =>
    floatValues(
      b.type,
      await tensorBytes(model.proto.graph!.initializer!.find((t) => t.name === b.initializer)!, model),
    );
  const sized = bound.filter((b) => numel(b.dims) > 1).sort((a, b) => numel(a.dims) - numel(b.dims));
  let probe = sized[0] ?? bound[0];
  if (probe === undefined) return series[series.length - 1]; // nothing bound by name: try the newest
  let g = await values(probe);
  for (const b of sized.slice(1)) {
    if (!isConstantValued(g)) break;
    g = await values((probe = b));
  }
  for (let i = series.length - 1; i >= 0; i--) {
    const src = series[i].tensors.get(probe.source);
    if (
      src !== undefined &&
      isReadableFloat(src.dtype) &&
      valuesMatch(g, probe.type, await readFloat64(pool, src), 'identity', src.shape)
    )
      return series[i];
  }
  return undefined;
}

/** Value matches of the pending initializers in the holder: a binding, or why there is none. */
async function bindByValue(
  model: LoadedModel,
  holder: Checkpoint,
  pending: readonly TensorProto[],
  pool: FilePool,
): Promise<Map<string, BoundTensor | string>> {
  const out = new Map<string, BoundTensor | string>();
  const cache = new Map<string, Float64Array>();
  for (const t of pending) {
    const name = t.name ?? '';
    const type = t.dataType ?? 0;
    const dims = dimsOf(t);
    const sameSize = [...holder.tensors.values()].filter(
      (src) => isReadableFloat(src.dtype) && numel(src.shape) === numel(dims),
    );
    // no tensor of its size: its bytes (possibly gigabytes of external data) need not be read
    if (sameSize.length === 0) continue;
    const g = floatValues(type, await tensorBytes(t, model));
    const matches: BoundTensor[] = [];
    for (const src of sameSize) {
      const transforms: Transform[] = [sameDims(dims, src.shape) ? 'identity' : 'reshape'];
      if (src.shape.length === 2 && dims.length === 2 && dims[0] === src.shape[1] && dims[1] === src.shape[0])
        transforms.push('transpose');
      let c = cache.get(src.name);
      if (c === undefined) cache.set(src.name, (c = await readFloat64(pool, src)));
      for (const transform of transforms) {
        if (valuesMatch(g, type, c, transform, src.shape))
          matches.push({ initializer: name, type, dims, source: src.name, transform, via: 'value' });
      }
    }
    // names of one storage (tied weights in a PyTorch file: an embedding and its LM head) are one match
    const identity = (m: BoundTensor) => {
      const src = holder.tensors.get(m.source)!;
      return `${src.storage === undefined ? m.source : `${src.file}:${src.storage}@${src.position}:${src.strides ?? ''}`}/${m.transform}`;
    };
    if (matches.length === 1) out.set(name, matches[0]);
    else if (matches.length > 1 && !isConstantValued(g) && new Set(matches.map(identity)).size === 1)
      out.set(name, matches[0]);
    else if (matches.length > 1)
      out.set(
        name,
        `equals several checkpoint tensors by value (${matches
          .slice(0, 4)
          .map((m) => `${m.source}${m.transform === 'transpose' ? ' transposed' : ''}`)
          .join(', ')}); say which with --map`,
      );
  }
  return out;
}

/** `"a" [2, 3], "b" [3] and 4 more`: the first few names with their shapes. */
function someNames(items: readonly { name: string; dims: readonly number[] }[], max: number): string {
  const list = items
    .slice(0, max)
    .map((u) => `"${u.name}" [${u.dims.join(', ')}]`)
    .join(', ');
  return items.length > max ? `${list} and ${items.length - max} more` : list;
}

/** A graph none of whose float initializers the run can supply: another model, not a folding slip. */
function mismatchError(file: string, unbound: readonly UnboundTensor[], ref: Checkpoint): AvgCkptError {
  const graph = someNames(
    unbound.map((u) => ({ name: u.initializer, dims: u.dims })),
    4,
  );
  const run = someNames(
    [...ref.tensors.values()].filter((t) => isFloatKind(t.dtype)).map((t) => ({ name: t.name, dims: t.shape })),
    4,
  );
  return new AvgCkptError(
    'model-mismatch',
    `this model does not belong to these checkpoints: 0 of ${unbound.length} float initializers match a checkpoint tensor by name or by value ` +
      `(the graph has ${graph || 'no float initializers'}; ${ref.path} has ${run}). ` +
      "Pass the ONNX export of this run's architecture (exported from any of its checkpoints); if only the names differ, bind them with --map 'REGEX=>CHECKPOINT_NAME'",
    { file },
  );
}

function unmappedError(file: string, unmapped: readonly UnboundTensor[], floats: number): AvgCkptError {
  const list = someNames(
    unmapped.map((u) => ({ name: u.initializer, dims: u.dims })),
    10,
  );
  return new AvgCkptError(
    'unmapped-initializers',
    `${unmapped.length} of the graph's ${floats} float initializers match no checkpoint tensor, so every candidate would be scored with their exported (stale) values: ${list}. ` +
      "Re-export without constant folding (torch.onnx.export(..., do_constant_folding=False)), map them with --map 'REGEX=>CHECKPOINT_NAME', or pass --allow-unmapped to score them as exported",
    { file },
  );
}

/** An initializer scored with its exported values (--allow-unmapped), as the reports list it. */
export interface ExportedInitializer {
  readonly initializer: string;
  readonly shape: readonly number[];
  readonly why: string;
}

/** The float initializers every candidate shares as exported: listed in every report, never silently. */
export function exportedInitializers(b: Binding): ExportedInitializer[] {
  return b.unmapped.map((u) => ({ initializer: u.initializer, shape: u.dims, why: u.why }));
}

/** One printable row per initializer, for `avg-ckpt inspect RUN --onnx model.onnx`. */
export interface BindingRow {
  readonly initializer: string;
  readonly shape: string;
  readonly dtype: string;
  readonly status: 'weight' | 'integer' | 'constant' | 'unmapped';
  /** Checkpoint tensor name, with ` (transposed)` or ` (reshaped)` where applied; or why unbound. */
  readonly source: string;
  readonly via: Via | '-';
}

export function bindingRows(b: Binding): BindingRow[] {
  const bound =
    (status: 'weight' | 'integer') =>
    (t: BoundTensor): BindingRow => ({
      initializer: t.initializer,
      shape: `[${t.dims.join(', ')}]`,
      dtype: dtypeName(t.type),
      status,
      source:
        t.source + (t.transform === 'identity' ? '' : ` (${t.transform === 'transpose' ? 'transposed' : 'reshaped'})`),
      via: t.via,
    });
  const unbound =
    (status: 'constant' | 'unmapped') =>
    (u: UnboundTensor): BindingRow => ({
      initializer: u.initializer,
      shape: `[${u.dims.join(', ')}]`,
      dtype: dtypeName(u.type),
      status,
      source: u.why,
      via: '-',
    });
  return [
    ...b.weights.map(bound('weight')),
    ...b.integers.map(bound('integer')),
    ...b.constants.map(unbound('constant')),
    ...b.unmapped.map(unbound('unmapped')),
  ];
}

/** The mapping `inspect RUN --onnx FILE` prints: every initializer, bound or not (never throws for unmapped ones). */
export async function describeBinding(
  onnxPath: string,
  series: readonly Checkpoint[],
  maps: readonly string[] = [],
): Promise<BindingRow[]> {
  const b = await bindModel(await loadModel(onnxPath), series, { maps: maps.map(parseMapRule), allowUnmapped: true });
  return bindingRows(b);
}
