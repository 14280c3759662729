/**
 * Streaming `.pt` writer: a zip laid out as `torch.save` lays it out (records stored, data
 * 64-byte aligned, a data descriptor after each record, ZIP64 when sizes or offsets need it),
 * holding a plain state dict that `torch.load(path, weights_only=True)` loads. `data.pkl` is
 * written first from the names, dtypes and shapes; the tensor bytes follow chunk by chunk in
 * layout order; names that alias one tensor (tied weights) share one storage record.
 */
import { crc32 } from 'node:zlib';
import { AvgCkptError } from '../../errors.js';
import { AppendFile } from '../append-file.js';
import type { ByteSink } from '../storage/output.js';
import { dtypeBits, type DType } from '../dtype.js';
import { stateDictPickle, type PickledTensor } from './state-dict-pickle.js';

export interface PtOutputTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface PtLayout {
  /** Tensors whose bytes are written, in write order (one per storage). */
  readonly tensors: readonly PtOutputTensor[];
  /** Every name -> the written tensor whose storage it shares (itself for written ones). */
  readonly storageOf: ReadonlyMap<string, string>;
  readonly pickle: Uint8Array;
  readonly metadata: Readonly<Record<string, string>>;
}

const ROOT = 'archive/';
const ALIGN = 64;
const U32_MAX = 0xffffffff;
/** 1980-01-01, the first day a zip can say (a date of 0 is not a valid one): outputs do not depend on the clock. */
const DOS_DATE = 0x21;

function byteLength(t: PtOutputTensor): number {
  return (t.shape.reduce((a, b) => a * b, 1) * dtypeBits(t.dtype)) / 8;
}

/**
 * The records of a `.pt` file. `aliases` maps a name to the name whose storage it shares (the
 * tied weights of the input); an aliased name is listed in the pickle but its bytes are not written.
 */
export function layoutPt(
  tensors: readonly PtOutputTensor[],
  metadata: Readonly<Record<string, string>>,
  aliases: ReadonlyMap<string, string> = new Map(),
): PtLayout {
  const written = tensors.filter((t) => !aliases.has(t.name));
  const key = new Map(written.map((t, i) => [t.name, String(i)]));
  const storageOf = new Map<string, string>();
  const pickled: PickledTensor[] = tensors.map((t) => {
    const owner = aliases.get(t.name) ?? t.name;
    const k = key.get(owner);
    if (k === undefined) throw new AvgCkptError('internal', `tensor ${t.name} aliases ${owner}, which is not written`);
    storageOf.set(t.name, owner);
    return {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      storage: k,
      storageNumel: t.shape.reduce((a, b) => a * b, 1),
    };
  });
  return { tensors: written, storageOf, pickle: stateDictPickle(pickled), metadata };
}

interface Entry {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  crc: number;
}

function localHeader(name: Uint8Array, offset: number, zip64: boolean): Uint8Array {
  // pad the extra field ('FB' like torch) so the data starts on a 64-byte boundary
  const fixed = 30 + name.byteLength + (zip64 ? 20 : 0) + 4;
  const pad = (ALIGN - ((offset + fixed) % ALIGN)) % ALIGN;
  const extraLength = (zip64 ? 20 : 0) + 4 + pad;
  const h = new Uint8Array(30 + name.byteLength + extraLength);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, 0x04034b50, true);
  dv.setUint16(4, zip64 ? 45 : 20, true);
  dv.setUint16(6, 0x0808, true); // sizes and CRC in a data descriptor; UTF-8 names
  dv.setUint16(12, DOS_DATE, true);
  dv.setUint32(18, zip64 ? U32_MAX : 0, true);
  dv.setUint32(22, zip64 ? U32_MAX : 0, true);
  dv.setUint16(26, name.byteLength, true);
  dv.setUint16(28, extraLength, true);
  h.set(name, 30);
  let e = 30 + name.byteLength;
  if (zip64) {
    dv.setUint16(e, 0x0001, true);
    dv.setUint16(e + 2, 16, true); // sizes follow in the data descriptor
    e += 20;
  }
  dv.setUint16(e, 0x4246, true); // 'FB'
  dv.setUint16(e + 2, pad, true);
  h.fill(0x5a, e + 4); // 'Z' padding, as torch writes it
  return h;
}

function descriptor(e: Entry): Uint8Array {
  const zip64 = e.size >= U32_MAX || e.offset >= U32_MAX;
  const d = new Uint8Array(zip64 ? 24 : 16);
  const dv = new DataView(d.buffer);
  dv.setUint32(0, 0x08074b50, true);
  dv.setUint32(4, e.crc, true);
  if (zip64) {
    dv.setBigUint64(8, BigInt(e.size), true);
    dv.setBigUint64(16, BigInt(e.size), true);
  } else {
    dv.setUint32(8, e.size, true);
    dv.setUint32(12, e.size, true);
  }
  return d;
}

function centralDirectory(entries: readonly Entry[], at: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const big = [e.size >= U32_MAX, e.size >= U32_MAX, e.offset >= U32_MAX];
    const extra = big.filter(Boolean).length * 8;
    const c = new Uint8Array(46 + name.byteLength + (extra > 0 ? 4 + extra : 0));
    const dv = new DataView(c.buffer);
    dv.setUint32(0, 0x02014b50, true);
    dv.setUint16(4, 0x031e, true);
    dv.setUint16(6, extra > 0 ? 45 : 20, true);
    dv.setUint16(8, 0x0808, true);
    dv.setUint16(14, DOS_DATE, true);
    dv.setUint32(16, e.crc, true);
    dv.setUint32(20, big[1] ? U32_MAX : e.size, true);
    dv.setUint32(24, big[0] ? U32_MAX : e.size, true);
    dv.setUint16(28, name.byteLength, true);
    dv.setUint16(30, extra > 0 ? 4 + extra : 0, true);
    dv.setUint32(42, big[2] ? U32_MAX : e.offset, true);
    c.set(name, 46);
    if (extra > 0) {
      let q = 46 + name.byteLength;
      dv.setUint16(q, 0x0001, true);
      dv.setUint16(q + 2, extra, true);
      q += 4;
      for (const [i, v] of [e.size, e.size, e.offset].entries()) {
        if (!big[i]) continue;
        dv.setBigUint64(q, BigInt(v), true);
        q += 8;
      }
    }
    parts.push(c);
  }
  const size = parts.reduce((a, p) => a + p.byteLength, 0);
  // ZIP64 end records always (torch writes them too), then the classic one
  const tail = new Uint8Array(56 + 20 + 22);
  const dv = new DataView(tail.buffer);
  dv.setUint32(0, 0x06064b50, true);
  dv.setBigUint64(4, 44n, true);
  dv.setUint16(12, 0x031e, true);
  dv.setUint16(14, 45, true);
  dv.setBigUint64(24, BigInt(entries.length), true);
  dv.setBigUint64(32, BigInt(entries.length), true);
  dv.setBigUint64(40, BigInt(size), true);
  dv.setBigUint64(48, BigInt(at), true);
  dv.setUint32(56, 0x07064b50, true);
  dv.setBigUint64(64, BigInt(at + size), true);
  dv.setUint32(72, 1, true);
  dv.setUint32(76, 0x06054b50, true);
  dv.setUint16(84, Math.min(entries.length, 0xffff), true);
  dv.setUint16(86, Math.min(entries.length, 0xffff), true);
  dv.setUint32(88, Math.min(size, U32_MAX), true);
  dv.setUint32(92, Math.min(at, U32_MAX), true);
  const out = new Uint8Array(size + tail.byteLength);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  out.set(tail, o);
  return out;
}

/** Appends a layout's records to a file; `write` takes the tensor bytes in layout order. */
export class PtWriter {
  private readonly entries: Entry[] = [];
  /** Index of the tensor whose bytes come next, and how many of them came already. */
  private current = 0;
  private currentDone = 0;

  private constructor(
    private readonly out: AppendFile,
    readonly path: string,
    readonly layout: PtLayout,
  ) {}

  /** `path` is where the bytes go (often a temporary name), `shownAs` what errors name. */
  static async create(path: string, layout: PtLayout, shownAs = path): Promise<PtWriter> {
    return PtWriter.start(await AppendFile.create(path, shownAs), layout, shownAs);
  }

  /** Starts writing `layout` into a file of an output (local or in object storage). */
  static async into(sink: ByteSink, layout: PtLayout, shownAs: string): Promise<PtWriter> {
    return PtWriter.start(AppendFile.over(sink, shownAs), layout, shownAs);
  }

  private static async start(out: AppendFile, layout: PtLayout, shownAs: string): Promise<PtWriter> {
    const w = new PtWriter(out, shownAs, layout);
    try {
      await w.record('data.pkl', layout.pickle);
      await w.record('byteorder', new TextEncoder().encode('little'));
      await w.beginTensor();
    } catch (e) {
      await w.discard();
      throw e;
    }
    return w;
  }

  private async record(name: string, bytes: Uint8Array): Promise<void> {
    await this.begin(name, bytes.byteLength);
    await this.append(bytes);
    await this.end();
  }

  private async begin(name: string, size: number): Promise<void> {
    const full = `${ROOT}${name}`;
    const offset = this.out.size;
    const header = localHeader(new TextEncoder().encode(full), offset, size >= U32_MAX || offset >= U32_MAX);
    this.entries.push({ name: full, offset, size, crc: 0 });
    await this.out.append(header);
  }

  private async end(): Promise<void> {
    await this.out.append(descriptor(this.entries[this.entries.length - 1]));
  }

  /** Starts the next tensor's record, finishing empty tensors on the way. */
  private async beginTensor(): Promise<void> {
    while (this.current < this.layout.tensors.length) {
      const size = byteLength(this.layout.tensors[this.current]);
      await this.begin(`data/${this.current}`, size);
      this.currentDone = 0;
      if (size > 0) return;
      await this.end();
      this.current++;
    }
  }

  private async append(bytes: Uint8Array): Promise<void> {
    const e = this.entries[this.entries.length - 1];
    e.crc = crc32(bytes, e.crc);
    await this.out.append(bytes);
  }

  /** Appends tensor bytes (copied if kept for coalescing, so callers may reuse the buffer). */
  async write(bytes: Uint8Array): Promise<void> {
    let o = 0;
    while (o < bytes.byteLength) {
      if (this.current >= this.layout.tensors.length) {
        throw new AvgCkptError('internal', 'more tensor bytes than the layout plans', { file: this.path });
      }
      const size = byteLength(this.layout.tensors[this.current]);
      const n = Math.min(size - this.currentDone, bytes.byteLength - o);
      await this.append(bytes.subarray(o, o + n));
      this.currentDone += n;
      o += n;
      if (this.currentDone === size) {
        await this.end();
        this.current++;
        await this.beginTensor();
      }
    }
  }

  /** Writes the closing records and the central directory, checks, fsyncs and closes. */
  async close(): Promise<void> {
    if (this.current !== this.layout.tensors.length) {
      await this.out.discard();
      throw new AvgCkptError('internal', `wrote ${this.current} of ${this.layout.tensors.length} tensors`, {
        file: this.path,
      });
    }
    try {
      if (Object.keys(this.layout.metadata).length > 0) {
        // the recipe, where safetensors keeps it in __metadata__; torch.load ignores other records
        await this.record('extra/avg_ckpt.json', new TextEncoder().encode(JSON.stringify(this.layout.metadata)));
      }
      await this.record('version', new TextEncoder().encode('3\n'));
      await this.out.append(centralDirectory(this.entries, this.out.size));
    } catch (e) {
      await this.out.discard();
      throw e;
    }
    await this.out.close();
  }

  /** Closes without checks (the caller is abandoning the file). */
  async discard(): Promise<void> {
    await this.out.discard();
  }
}
