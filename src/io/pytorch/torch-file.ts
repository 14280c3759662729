/**
 * Opens a `torch.save` file without reading its tensor data: the zip format (torch >= 1.6:
 * `<root>/data.pkl` + one stored record per storage) or the legacy format (magic number,
 * protocol, sys_info, pickle, storage keys, raw storages). Only the pickle and a few small
 * headers are read; tensors are located by position for the merge to stream.
 */
import { AvgCkptError } from '../../errors.js';
import { isZip, readRecord, readZipDirectory, recordDataStart, type RangedReader, type ZipRecord } from '../zip.js';
import { PickleTruncated, runPickle, type PyValue } from './pickle.js';
import type { TensorSource } from '../formats/tensor-source.js';
import { placeTensor, elementSize, type StoragePlace } from './placement.js';
import { chooseStateDict, stepEntry } from './state-dict.js';
import { torchHooks, type TorchStorage } from './torch-pickle.js';

/** The largest pickle read (tensor data is outside it: real ones are kilobytes to megabytes). */
export const MAX_PICKLE_BYTES = 256 << 20;
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** LONG1 of the magic number (10 little-endian bytes): what every legacy file's first pickle holds. */
const LEGACY_MAGIC_LONG1 = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

export interface TorchFile {
  readonly path: string;
  readonly layout: 'zip' | 'legacy';
  /** The state dict's key ('' for a plain state dict). */
  readonly key: string;
  readonly tensors: readonly TensorSource[];
  /** A top-level `step` or `global_step` entry, if the file has one. */
  readonly step?: number;
}

export interface TorchOpenOptions {
  /** Dotted key of the state dict (`--key`). */
  readonly key?: string;
}

/** PROTO, then (protocol 4 and 5) a FRAME, then the magic number. */
export function isTorchLegacy(head: Uint8Array): boolean {
  if (head[0] !== 0x80) return false;
  const at = head[2] === 0x95 ? 11 : 2;
  return head.byteLength >= at + LEGACY_MAGIC_LONG1.length && LEGACY_MAGIC_LONG1.every((b, i) => head[at + i] === b);
}

/** True for the first bytes of a file in either torch format (a zip is taken to be torch's). */
export function isTorchFile(head: Uint8Array): boolean {
  return isZip(head) || isTorchLegacy(head);
}

function parse(bytes: Uint8Array, file: string, storages: Map<string, TorchStorage>, start = 0) {
  return runPickle(bytes, file, torchHooks(file, storages), start);
}

function locate(
  root: PyValue,
  file: string,
  opts: TorchOpenOptions,
  place: (s: TorchStorage) => StoragePlace | Promise<StoragePlace>,
  bigEndian: boolean,
) {
  const chosen = chooseStateDict(root, file, opts.key);
  return {
    key: chosen.key,
    step: stepEntry(root),
    tensors: async () => {
      const out: TensorSource[] = [];
      for (const t of chosen.tensors) out.push(placeTensor(t, await place(t.tensor.storage), file, bigEndian));
      return out;
    },
  };
}

async function openZip(r: RangedReader, file: string, opts: TorchOpenOptions): Promise<TorchFile> {
  const records = await readZipDirectory(r, file);
  const pickles = records.filter((rec) => rec.name === 'data.pkl' || rec.name.endsWith('/data.pkl'));
  // the archive root is the folder of data.pkl; a nested one (e.g. TorchScript's) loses to the shallowest
  const pkl = pickles.sort((a, b) => a.name.split('/').length - b.name.split('/').length)[0];
  if (pkl === undefined) {
    throw new AvgCkptError('invalid-zip', 'is a zip archive without data.pkl: not a torch.save checkpoint', { file });
  }
  const root = pkl.name.slice(0, -'data.pkl'.length);
  if (pkl.size > MAX_PICKLE_BYTES)
    throw new AvgCkptError(
      'invalid-pickle',
      `data.pkl of ${pkl.size} bytes exceeds the ${MAX_PICKLE_BYTES}-byte limit`,
      { file },
    );
  const byName = new Map<string, ZipRecord>(records.map((rec) => [rec.name, rec]));
  const order = byName.get(`${root}byteorder`);
  let bigEndian = false;
  if (order !== undefined) {
    const text = new TextDecoder().decode(await readRecord(r, order, file)).trim();
    if (text !== 'little' && text !== 'big')
      throw new AvgCkptError('invalid-zip', `byteorder record says "${text.slice(0, 20)}"`, { file });
    bigEndian = text === 'big';
  }
  const bytes = await readRecord(r, pkl, file);
  const storages = new Map<string, TorchStorage>();
  let value: PyValue;
  try {
    ({ value } = parse(bytes, file, storages));
  } catch (e) {
    if (e instanceof PickleTruncated)
      throw new AvgCkptError('invalid-pickle', 'data.pkl ends before its STOP opcode', { file });
    throw e;
  }
  const places = new Map<string, StoragePlace>();
  const found = locate(
    value,
    file,
    opts,
    async (s) => {
      let place = places.get(s.key);
      if (place === undefined) {
        const rec = byName.get(`${root}data/${s.key}`);
        if (rec === undefined)
          throw new AvgCkptError('invalid-zip', `storage ${s.key} has no record ${root}data/${s.key}`, { file });
        if (rec.method !== 0)
          throw new AvgCkptError(
            'invalid-zip',
            `storage record ${rec.name} is compressed; torch.save stores them uncompressed`,
            { file },
          );
        place = { position: await recordDataStart(r, rec, file), byteLength: rec.size };
        places.set(s.key, place);
      }
      return place;
    },
    bigEndian,
  );
  return { path: file, layout: 'zip', key: found.key, step: found.step, tensors: await found.tensors() };
}

/** Runs the pickle at `start`, reading more of the file until it reaches its STOP. */
async function pickleAt(r: RangedReader, start: number, file: string, storages: Map<string, TorchStorage>) {
  for (let length = 1 << 16; ; length *= 2) {
    const n = Math.min(length, r.size - start, MAX_PICKLE_BYTES);
    const bytes = new Uint8Array(Math.max(0, n));
    await r.read(start, bytes, bytes.byteLength);
    try {
      const { value, end } = parse(bytes, file, storages);
      return { value, end: start + end };
    } catch (e) {
      if (!(e instanceof PickleTruncated)) throw e;
      if (n >= r.size - start)
        throw new AvgCkptError(
          'invalid-pickle',
          `the pickle at byte ${start} ends with the file, before its STOP opcode`,
          { file },
        );
      if (n >= MAX_PICKLE_BYTES)
        throw new AvgCkptError(
          'invalid-pickle',
          `the pickle at byte ${start} exceeds the ${MAX_PICKLE_BYTES}-byte limit`,
          { file },
        );
    }
  }
}

async function openLegacy(r: RangedReader, file: string, opts: TorchOpenOptions): Promise<TorchFile> {
  const storages = new Map<string, TorchStorage>();
  const bad = (why: string) => new AvgCkptError('invalid-pickle', `legacy torch file: ${why}`, { file });
  const magic = await pickleAt(r, 0, file, storages);
  if (magic.value !== LEGACY_MAGIC) throw bad('wrong magic number');
  const protocol = await pickleAt(r, magic.end, file, storages);
  if (protocol.value !== LEGACY_PROTOCOL) throw bad(`protocol ${String(protocol.value)}, expected ${LEGACY_PROTOCOL}`);
  const sysInfo = await pickleAt(r, protocol.end, file, storages);
  const main = await pickleAt(r, sysInfo.end, file, storages);
  const keys = await pickleAt(r, main.end, file, storages);
  if (keys.value === null || typeof keys.value !== 'object' || !('kind' in keys.value) || keys.value.kind !== 'list')
    throw bad('storage keys are not a list');
  // raw storages follow in key order, each an int64 element count and its little-endian bytes
  const rootDTypes = new Map([...storages.values()].map((s) => [s.view?.root ?? s.key, s.dtype]));
  const places = new Map<string, StoragePlace>();
  let at = keys.end;
  const count = new Uint8Array(8);
  for (const k of keys.value.items) {
    const key = String(k);
    const dtype = rootDTypes.get(key);
    if (dtype === undefined) throw bad(`storage ${key} is listed but never used`);
    if (at + 8 > r.size) throw bad(`storage ${key} starts past the end of the file`);
    await r.read(at, count, 8);
    const n = new DataView(count.buffer).getBigInt64(0, true);
    const byteLength = Number(n) * elementSize(dtype, file, key);
    if (n < 0n || !Number.isSafeInteger(byteLength) || at + 8 + byteLength > r.size)
      throw bad(`storage ${key} of ${n} elements runs past the end of the file`);
    places.set(key, { position: at + 8, byteLength });
    at += 8 + byteLength;
  }
  const found = locate(
    main.value,
    file,
    opts,
    (s) => {
      const root = places.get(s.view?.root ?? s.key);
      if (root === undefined) throw bad(`storage ${s.view?.root ?? s.key} is not in the file`);
      if (s.view === undefined) return root;
      const size = elementSize(s.dtype, file, s.key);
      const position = root.position + s.view.offset * size;
      const byteLength = s.numel * size;
      if (position + byteLength > root.position + root.byteLength)
        throw bad(`storage view ${s.key} runs past its storage`);
      return { position, byteLength };
    },
    false,
  );
  return { path: file, layout: 'legacy', key: found.key, step: found.step, tensors: await found.tensors() };
}

/** Opens a torch file (either format) through `r`; `head` is its first bytes. */
export async function openTorchFile(
  r: RangedReader,
  head: Uint8Array,
  file: string,
  opts: TorchOpenOptions = {},
): Promise<TorchFile> {
  if (isTorchLegacy(head)) return openLegacy(r, file, opts);
  if (isZip(head)) return openZip(r, file, opts);
  throw new AvgCkptError('invalid-zip', 'is neither a torch.save zip archive nor a legacy torch file', { file });
}
