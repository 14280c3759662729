/**
 * Validation data: arrays from .npy, .npz or .safetensors files matched to the graph's inputs,
 * converted to the types the graph declares, and cut into batches once (every candidate reuses
 * the same ort.Tensors).
 */
import { basename, extname } from 'node:path';
import ort from 'onnxruntime-node';
import { AvgCkptError, ioError } from '../errors.js';
import { bytesPerElement, dtypeOfOnnx } from '../io/dtype.js';
import { decode, encode } from '../io/float-codec.js';
import {
  dtypeOfNpy,
  npyData,
  npyDTypeOf,
  readNpy,
  readNpz,
  type NpyArray,
  type NpyData,
  type NpyDType,
} from '../io/npy.js';
import type { LoadedModel } from '../io/onnx/model.js';
import { readSafetensorsHeader } from '../io/safetensors/reader.js';
import { FilePool } from '../io/storage/file-pool.js';
import { joinPath } from '../io/storage/paths.js';
import { listDir } from '../io/storage/storage.js';
import type { LabelSource } from './metrics.js';

/** A graph input the data must feed. */
export interface InputSpec {
  readonly name: string;
  readonly type: NpyDType;
  /** Fixed sizes as numbers, symbolic ones as undefined. */
  readonly dims: readonly (number | undefined)[];
}

export interface Batch {
  readonly feeds: Record<string, ort.Tensor>;
  /** Labels of these rows, as numbers, with their shape. */
  readonly labels?: { readonly values: Float64Array; readonly dims: readonly number[] };
  readonly rows: number;
}

export interface ValidationData {
  readonly rows: number;
  readonly batches: readonly Batch[];
  readonly labelKind?: 'class' | 'target';
  /** The labels' file and dtype, for messages about labels that do not fit the metric. */
  readonly labelSource?: LabelSource;
  /** How files were matched to inputs, for the user. */
  readonly notes: readonly string[];
}

export interface DataOptions {
  readonly dataDir?: string;
  /** NAME -> FILE, from --input NAME=FILE. */
  readonly inputs?: Readonly<Record<string, string>>;
  readonly labels?: string;
  readonly batchSize?: number;
}

/** The graph inputs that are not initializers (old exporters list initializers as inputs too). */
export function inputSpecs(model: LoadedModel): InputSpec[] {
  const graph = model.proto.graph!;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  return (graph.input ?? [])
    .filter((i) => !inits.has(i.name))
    .map((i) => {
      const tt = i.type?.tensorType;
      const st = dtypeOfOnnx(tt?.elemType ?? 0);
      const type = st === undefined ? undefined : npyDTypeOf(st);
      if (type === undefined)
        throw new AvgCkptError('invalid-onnx', `graph input "${i.name}" has an element type avg-ckpt cannot feed`, {
          file: model.path,
        });
      const dims = (tt?.shape?.dim ?? []).map((d) =>
        d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 && !d.dimParam
          ? Number(d.dimValue)
          : undefined,
      );
      return { name: i.name ?? '', type, dims };
    });
}

async function readSafetensorsArrays(path: string): Promise<Map<string, NpyArray>> {
  const f = await readSafetensorsHeader(path);
  const pool = new FilePool(1);
  const out = new Map<string, NpyArray>();
  try {
    for (const t of f.header.tensors) {
      const dtype = npyDTypeOf(t.dtype);
      if (dtype === undefined)
        throw new AvgCkptError('data-mismatch', `${t.dtype} validation tensors are not supported`, {
          file: path,
          tensor: t.name,
        });
      const bytes = new Uint8Array(t.end - t.begin);
      await pool.read(path, f.position(t), bytes);
      out.set(t.name, { dtype, shape: t.shape, data: npyData(dtype, bytes.buffer) });
    }
  } finally {
    await pool.close();
  }
  return out;
}

/** Every array a file holds: a .npy by its file name, .npz and .safetensors by their keys. */
async function readArrays(path: string): Promise<Map<string, NpyArray>> {
  const ext = extname(path).toLowerCase();
  if (ext === '.npy') return new Map([[basename(path, extname(path)), await readNpy(path)]]);
  if (ext === '.npz') return readNpz(path);
  if (ext === '.safetensors') return readSafetensorsArrays(path);
  throw new AvgCkptError('usage', 'validation data must be .npy, .npz or .safetensors', { file: path });
}

/** The one array of a file, or the one named `name` in it. */
async function arrayFrom(path: string, name: string): Promise<NpyArray> {
  const arrays = await readArrays(path);
  const a = arrays.get(name) ?? (arrays.size === 1 ? [...arrays.values()][0] : undefined);
  if (a === undefined)
    throw new AvgCkptError(
      'data-mismatch',
      `holds ${arrays.size} arrays (${[...arrays.keys()].join(', ')}) and none is named "${name}"`,
      { file: path },
    );
  return a;
}

const SPLIT_PREFIX = /^(val|valid|validation|eval|test|dev)[_-]/;
const LABEL_NAMES = ['labels', 'label', 'targets', 'target', 'y'];

function numbers(a: NpyArray): Float64Array {
  if (a.dtype === 'float16') return decode('F16', new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength));
  if (a.dtype === 'int64') return Float64Array.from(a.data as BigInt64Array, Number);
  return Float64Array.from(a.data as ArrayLike<number>);
}

/** Converts to the type the graph declares (exact for integers; floats round once). */
function convert(a: NpyArray, want: NpyDType, name: string, file: string): NpyData {
  if (a.dtype === want) return a.data;
  const isInt = (t: NpyDType) => t.startsWith('int') || t === 'uint8' || t === 'bool';
  if (isInt(want) && !isInt(a.dtype))
    throw new AvgCkptError('data-mismatch', `graph input "${name}" is ${want} but the data is ${a.dtype}`, { file });
  const v = numbers(a);
  switch (want) {
    case 'float64':
      return v;
    case 'float32':
      return Float32Array.from(v);
    case 'float16': {
      const out = new Uint8Array(v.length * 2);
      encode('F16', v, out);
      return new Uint16Array(out.buffer);
    }
    case 'int64':
      return BigInt64Array.from(v, (x) => BigInt(x));
    default: {
      const out = npyData(want, new ArrayBuffer(v.length * bytesPerElement(dtypeOfNpy(want)))) as Int32Array;
      out.set(v);
      return out;
    }
  }
}

function sliceRows(data: NpyData, rowSize: number, from: number, to: number): NpyData {
  return data.subarray(from * rowSize, to * rowSize) as NpyData;
}

/** Loads, matches and batches the validation data for a graph. */
export async function loadValidationData(model: LoadedModel, opts: DataOptions): Promise<ValidationData> {
  const specs = inputSpecs(model);
  const notes: string[] = [];
  const chosen = new Map<string, { array: NpyArray; file: string }>();
  let labels: { array: NpyArray; file: string } | undefined;
  for (const [name, file] of Object.entries(opts.inputs ?? {})) {
    if (!specs.some((s) => s.name === name))
      throw new AvgCkptError(
        'usage',
        `--input ${name}=...: the graph has no input "${name}" (it has ${specs.map((s) => s.name).join(', ')})`,
      );
    chosen.set(name, { array: await arrayFrom(file, name), file });
  }
  if (opts.labels !== undefined) labels = { array: await arrayFrom(opts.labels, 'labels'), file: opts.labels };

  if (opts.dataDir !== undefined) {
    let names: string[];
    try {
      names = (await listDir(opts.dataDir))
        .map((e) => e.name)
        .filter((n) => /\.(npy|npz|safetensors)$/i.test(n))
        .sort();
    } catch (e) {
      throw ioError(opts.dataDir, e, 'list the data folder');
    }
    const pool: { key: string; array: NpyArray; file: string }[] = [];
    for (const n of names)
      for (const [key, array] of await readArrays(joinPath(opts.dataDir, n)))
        pool.push({ key, array, file: joinPath(opts.dataDir, n) });
    const take = (match: (key: string) => boolean) => {
      const i = pool.findIndex((p) => match(p.key));
      return i < 0 ? undefined : pool.splice(i, 1)[0];
    };
    const strip = (k: string) => k.replace(SPLIT_PREFIX, '');
    for (const s of specs) {
      if (chosen.has(s.name)) continue;
      const hit = take((k) => k === s.name) ?? take((k) => strip(k) === s.name);
      if (hit) chosen.set(s.name, hit);
    }
    labels ??= take((k) => LABEL_NAMES.includes(strip(k)));
    const missing = specs.filter((s) => !chosen.has(s.name));
    if (missing.length === 1 && pool.length === 1) {
      chosen.set(missing[0].name, pool[0]);
      notes.push(
        `graph input "${missing[0].name}" <- ${pool[0].file}${pool[0].key !== basename(pool[0].file, extname(pool[0].file)) ? `:${pool[0].key}` : ''} (the only array left)`,
      );
    }
  }
  for (const [, c] of chosen) {
    if (labels === undefined && c.file.endsWith('.npz')) {
      const inFile = (await readArrays(c.file)).get('labels');
      if (inFile) labels = { array: inFile, file: c.file };
    }
  }
  const missing = specs.filter((s) => !chosen.has(s.name));
  if (missing.length > 0) {
    const what = `no data for graph input${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m.name}"`).join(', ')}`;
    if (opts.dataDir === undefined)
      throw new AvgCkptError(
        'usage',
        `${what}: pass --input NAME=FILE or --data DIR with files named after the inputs`,
      );
    throw new AvgCkptError(
      'data-mismatch',
      `${what} in the data folder: ${await seenInFolder(opts.dataDir)}; it looks for a .npy/.npz/.safetensors file or array named ${lookedFor(missing)}, and labels named ${LABEL_NAMES.join(', ')}. Rename the files, or pass --input NAME=FILE`,
      { file: opts.dataDir },
    );
  }
  return batchData(specs, chosen, labels, opts.batchSize, notes);
}

/** What a data folder holds, for the message when it feeds nothing: every file, and the arrays of the data files. */
async function seenInFolder(dir: string): Promise<string> {
  const names = (await listDir(dir)).map((e) => e.name).sort();
  if (names.length === 0) return 'it is empty';
  const shown = await Promise.all(
    names.slice(0, 12).map(async (n) => {
      if (!/\.(npy|npz|safetensors)$/i.test(n)) return `${n} (not a data file)`;
      const keys = [...(await readArrays(joinPath(dir, n))).keys()];
      return extname(n).toLowerCase() === '.npy' ? n : `${n} (arrays ${keys.join(', ') || 'none'})`;
    }),
  );
  return `it holds ${shown.join(', ')}${names.length > 12 ? ` and ${names.length - 12} more` : ''}`;
}

/** `"pixels" (or val_pixels, test_pixels, ...)`: the names a graph input is matched by. */
function lookedFor(missing: readonly InputSpec[]): string {
  return missing.map((m) => `"${m.name}" (or val_${m.name}, test_${m.name}, ...)`).join(' and ');
}

function batchData(
  specs: readonly InputSpec[],
  chosen: Map<string, { array: NpyArray; file: string }>,
  labels: { array: NpyArray; file: string } | undefined,
  batchSize: number | undefined,
  notes: string[],
): ValidationData {
  const rows = chosen.get(specs[0].name)!.array.shape[0] ?? 1;
  const prepared = specs.map((s) => {
    const { array, file } = chosen.get(s.name)!;
    if (array.shape.length !== s.dims.length)
      throw new AvgCkptError(
        'data-mismatch',
        `graph input "${s.name}" has ${s.dims.length} dimensions, the data (${array.shape.join('x')}) has ${array.shape.length}`,
        { file },
      );
    s.dims.forEach((d, i) => {
      if (i > 0 && d !== undefined && d !== array.shape[i])
        throw new AvgCkptError(
          'data-mismatch',
          `graph input "${s.name}" needs size ${d} in dimension ${i}, the data has ${array.shape[i]}`,
          { file },
        );
    });
    if (array.shape[0] !== rows)
      throw new AvgCkptError(
        'data-mismatch',
        `has ${array.shape[0]} rows, but ${chosen.get(specs[0].name)!.file} has ${rows}`,
        { file },
      );
    return {
      spec: s,
      data: convert(array, s.type, s.name, file),
      rowSize: array.shape.slice(1).reduce((a, b) => a * b, 1),
      dims: array.shape,
    };
  });
  if (labels !== undefined && labels.array.shape[0] !== rows)
    throw new AvgCkptError('data-mismatch', `labels have ${labels.array.shape[0]} rows, the inputs ${rows}`, {
      file: labels.file,
    });
  const fixed = specs.map((s) => s.dims[0]).find((d) => d !== undefined);
  const size = fixed ?? Math.max(1, Math.min(batchSize ?? 256, rows));
  if (fixed !== undefined && batchSize !== undefined && batchSize !== fixed)
    notes.push(`the graph has a fixed batch of ${fixed}; --batch-size ${batchSize} ignored`);
  if (fixed !== undefined && rows % fixed !== 0)
    throw new AvgCkptError(
      'data-mismatch',
      `the graph has a fixed batch size of ${fixed}, which does not divide the ${rows} validation rows; re-export with a dynamic batch axis`,
    );
  const labelValues = labels === undefined ? undefined : numbers(labels.array);
  const labelRow = labels === undefined ? 1 : labels.array.shape.slice(1).reduce((a, b) => a * b, 1);
  const batches: Batch[] = [];
  for (let from = 0; from < rows; from += size) {
    const to = Math.min(rows, from + size);
    const feeds: Record<string, ort.Tensor> = {};
    for (const p of prepared) {
      feeds[p.spec.name] = new ort.Tensor(p.spec.type, sliceRows(p.data, p.rowSize, from, to) as never, [
        to - from,
        ...p.dims.slice(1),
      ]);
    }
    const lab =
      labelValues === undefined
        ? undefined
        : {
            values: labelValues.subarray(from * labelRow, to * labelRow),
            dims: [to - from, ...labels!.array.shape.slice(1)],
          };
    batches.push({ feeds, labels: lab, rows: to - from });
  }
  const labelKind = labels === undefined ? undefined : labels.array.dtype.startsWith('float') ? 'target' : 'class';
  const labelSource = labels === undefined ? undefined : { file: labels.file, dtype: labels.array.dtype };
  return { rows, batches, labelKind, labelSource, notes };
}
