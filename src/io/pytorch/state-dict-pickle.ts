/**
 * The pickle `torch.save(state_dict)` writes (protocol 2): a dict of tensors rebuilt with
 * `torch._utils._rebuild_tensor_v2` from storages named by persistent ids. Only globals that
 * `torch.load(weights_only=True)` allows appear in it.
 */
import { torchStorageOf, type DType } from '../dtype.js';

export interface PickledTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** The storage record's key: tensors with the same key share one storage. */
  readonly storage: string;
  /** Elements in the storage. */
  readonly storageNumel: number;
}

/** Appends pickle opcodes (protocol 2) to a growing byte array. */
export class PickleWriter {
  private bytes: number[] = [];
  op(...b: number[]): this {
    for (const x of b) this.bytes.push(x);
    return this;
  }
  text(s: string): this {
    const b = new TextEncoder().encode(s);
    const n = b.byteLength;
    this.op(0x58, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff); // BINUNICODE
    for (const x of b) this.bytes.push(x);
    return this;
  }
  global(module: string, name: string): this {
    this.op(0x63);
    for (const x of new TextEncoder().encode(`${module}\n${name}\n`)) this.bytes.push(x);
    return this;
  }
  int(v: number): this {
    if (v < 0 || !Number.isSafeInteger(v)) throw new RangeError(`cannot pickle ${v}`);
    if (v < 0x100) return this.op(0x4b, v); // BININT1
    if (v < 0x10000) return this.op(0x4d, v & 0xff, v >> 8); // BININT2
    if (v < 0x80000000) return this.op(0x4a, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24); // BININT
    const b: number[] = []; // LONG1: little-endian two's complement, with a sign byte when needed
    for (let x = BigInt(v); x > 0n; x >>= 8n) b.push(Number(x & 0xffn));
    if (b[b.length - 1] & 0x80) b.push(0);
    return this.op(0x8a, b.length, ...b);
  }
  tuple(items: readonly number[]): this {
    if (items.length === 0) return this.op(0x29); // EMPTY_TUPLE
    this.op(0x28);
    for (const x of items) this.int(x);
    return this.op(0x74);
  }
  /** A contiguous tensor at offset 0 of its storage, rebuilt as `torch.save` pickles it. */
  tensor(t: PickledTensor): this {
    const cls = torchStorageOf(t.dtype);
    if (cls === undefined) throw new RangeError(`no torch storage for ${t.dtype}`);
    this.global('torch._utils', '_rebuild_tensor_v2').op(0x28, 0x28); // MARK MARK (persistent id tuple)
    this.text('storage').global('torch', cls).text(t.storage).text('cpu').int(t.storageNumel).op(0x74, 0x51); // TUPLE BINPERSID
    this.int(0).tuple(t.shape).tuple(contiguousStrides(t.shape)).op(0x89); // offset, size, stride, NEWFALSE
    this.global('collections', 'OrderedDict').op(0x29, 0x52); // backward hooks: OrderedDict()
    return this.op(0x74, 0x52); // TUPLE, REDUCE
  }
  done(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** `data.pkl` for a plain state dict of contiguous tensors, each at offset 0 of its storage. */
export function stateDictPickle(tensors: readonly PickledTensor[]): Uint8Array {
  const o = new PickleWriter().op(0x80, 0x02, 0x7d, 0x28); // PROTO 2, EMPTY_DICT, MARK
  for (const t of tensors) o.text(t.name).tensor(t);
  return o.op(0x75, 0x2e).done(); // SETITEMS, STOP
}
