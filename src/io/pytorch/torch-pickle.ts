/**
 * What torch's pickles mean: the only calls given a meaning are the tensor rebuild functions,
 * storage types, `OrderedDict`, `torch.Size` and the byte-string helper of protocol 2. Every
 * other call stays an inert PyObject (the selected state dict refuses them, see state-dict.ts).
 */
import { AvgCkptError } from '../../errors.js';
import { dtypeOfTorchDtype, dtypeOfTorchStorage, type DType } from '../dtype.js';
import { globalName, type PickleHooks, type PyGlobal, type PyTuple, type PyValue } from './pickle.js';

/** One storage of the file: tensors referring to the same key share it (views, tied weights). */
export interface TorchStorage {
  readonly key: string;
  readonly dtype: DType;
  /** Elements the pickle says it holds. */
  readonly numel: number;
  /** Legacy format only: this storage is a view into `root` starting at `offset` elements. */
  readonly view?: { readonly root: string; readonly offset: number };
}

export interface TorchTensor {
  readonly storage: TorchStorage;
  readonly dtype: DType;
  /** In elements of `dtype`. */
  readonly offset: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
}

export type TorchHost = { readonly kind: 'host'; readonly value: TorchStorage | TorchTensor };

export function isTensor(v: PyValue): v is { kind: 'host'; value: TorchTensor } {
  return v !== null && typeof v === 'object' && 'kind' in v && v.kind === 'host' && 'storage' in (v.value as object);
}

function isStorage(v: PyValue): v is { kind: 'host'; value: TorchStorage } {
  return v !== null && typeof v === 'object' && 'kind' in v && v.kind === 'host' && 'key' in (v.value as object);
}

const isGlobal = (v: PyValue): v is PyGlobal =>
  v !== null && typeof v === 'object' && 'kind' in v && v.kind === 'global';

/** Storage class or dtype global -> dtype; undefined when it is neither. */
export function storageDType(g: PyValue): DType | undefined {
  if (!isGlobal(g) || (g.module !== 'torch' && g.module !== 'torch.storage' && g.module !== 'torch.cuda'))
    return undefined;
  // an untyped storage (torch >= 2) holds bytes; the tensors over it say their dtype
  return g.name === 'UntypedStorage' ? 'U8' : dtypeOfTorchStorage(g.name);
}

function torchDType(g: PyValue): DType | undefined {
  return isGlobal(g) && g.module === 'torch' ? dtypeOfTorchDtype(`torch.${g.name}`) : undefined;
}

export const REBUILD_TENSOR = new Set([
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
]);
const REBUILD_PARAMETER = new Set(['torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state']);
const TENSOR_TYPES = new Set(['torch.Tensor', 'torch._tensor.Tensor', 'torch.nn.parameter.Parameter']);

/** Builds the hooks for one file; `storageKeys` collects every storage the pickle names. */
export function torchHooks(file: string, storages: Map<string, TorchStorage>): PickleHooks {
  const bad = (why: string) => new AvgCkptError('invalid-pickle', why, { file });
  const int = (v: PyValue, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${what} is not a non-negative integer`);
    return v;
  };
  const ints = (v: PyValue, what: string): number[] => {
    if (v === null || typeof v !== 'object' || !('kind' in v) || v.kind !== 'tuple')
      throw bad(`${what} is not a tuple`);
    return v.items.map((x) => int(x, what));
  };
  const rebuildTensor = (g: PyGlobal, args: PyTuple): PyValue => {
    const [storage, offset, size, stride] = args.items;
    if (!isStorage(storage)) throw bad(`${globalName(g)} called without a storage`);
    let dtype = storage.value.dtype;
    if (g.name === '_rebuild_tensor_v3') {
      const d = torchDType(args.items[6]);
      if (d === undefined) throw bad(`${globalName(g)} with an unknown dtype`);
      dtype = d;
    }
    const shape = ints(size, 'tensor size');
    const strides = ints(stride, 'tensor stride');
    if (strides.length !== shape.length)
      throw bad(`tensor of ${shape.length} dimensions has ${strides.length} strides`);
    const value: TorchTensor = { storage: storage.value, dtype, offset: int(offset, 'storage offset'), shape, strides };
    return { kind: 'host', value };
  };
  return {
    persistentLoad(pid) {
      if (
        pid === null ||
        typeof pid !== 'object' ||
        !('kind' in pid) ||
        pid.kind !== 'tuple' ||
        pid.items[0] !== 'storage'
      ) {
        throw bad('a persistent id that is not a torch storage');
      }
      const [, type, key, , numel, view] = pid.items;
      const dtype = storageDType(type);
      if (dtype === undefined) throw bad(`storage of unknown type ${isGlobal(type) ? globalName(type) : typeof type}`);
      if (typeof key !== 'string' && typeof key !== 'number') throw bad('storage key is not a string');
      const k = String(key);
      let storage: TorchStorage = { key: k, dtype, numel: int(numel, 'storage size') };
      if (view !== undefined && view !== null) {
        // pre-1.0 legacy files: (view key, offset, size) into the root storage `key`
        if (typeof view !== 'object' || !('kind' in view) || view.kind !== 'tuple')
          throw bad('storage view metadata is not a tuple');
        const [viewKey, offset, size] = view.items;
        storage = {
          key: String(viewKey),
          dtype,
          numel: int(size, 'view size'),
          view: { root: k, offset: int(offset, 'view offset') },
        };
      }
      const known = storages.get(storage.key);
      if (known !== undefined) {
        if (known.dtype !== storage.dtype) throw bad(`storage ${storage.key} is named with two dtypes`);
        return { kind: 'host', value: known };
      }
      storages.set(storage.key, storage);
      return { kind: 'host', value: storage };
    },
    reduce(g, args) {
      const name = globalName(g);
      if (REBUILD_TENSOR.has(name)) return rebuildTensor(g, args);
      if (REBUILD_PARAMETER.has(name)) {
        if (!isTensor(args.items[0])) throw bad(`${name} called without a tensor`);
        return args.items[0];
      }
      if (name === 'torch._tensor._rebuild_from_type_v2' || name === 'torch._utils._rebuild_from_type_v2') {
        const [fn, type, inner] = args.items;
        if (
          !isGlobal(fn) ||
          !REBUILD_TENSOR.has(globalName(fn)) ||
          !isGlobal(type) ||
          !TENSOR_TYPES.has(globalName(type))
        )
          return undefined;
        if (inner === null || typeof inner !== 'object' || !('kind' in inner) || inner.kind !== 'tuple')
          throw bad(`${name} without arguments`);
        return rebuildTensor(fn, inner);
      }
      if (name === 'collections.OrderedDict') {
        const d: PyValue = { kind: 'dict', entries: [] };
        const items = args.items[0];
        if (
          items !== undefined &&
          items !== null &&
          typeof items === 'object' &&
          'kind' in items &&
          items.kind === 'list'
        ) {
          for (const pair of items.items) {
            if (
              pair === null ||
              typeof pair !== 'object' ||
              !('kind' in pair) ||
              pair.kind !== 'tuple' ||
              pair.items.length !== 2
            )
              throw bad('OrderedDict item is not a pair');
            d.entries.push([pair.items[0], pair.items[1]]);
          }
        }
        return d;
      }
      if (name === 'torch.Size' && args.items.length === 1) return args.items[0];
      if (name === '_codecs.encode' && typeof args.items[0] === 'string') {
        // protocol 2 pickles bytes as _codecs.encode(text, 'latin1')
        const s = args.items[0];
        return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
      }
      return undefined;
    },
  };
}
