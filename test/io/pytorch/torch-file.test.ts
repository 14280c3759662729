/**
 * The torch reader on files written by PyTorch 1.13 for these tests (fixtures/pytorch/extra,
 * make.py there: tensor i holds (arange(n) + 10 i) / 2), on the malicious reference files, and
 * on how it chooses the state dict.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AvgCkptError } from '../../../src/errors.js';
import { PickleWriter } from '../../../src/io/pytorch/state-dict-pickle.js';
import { isTorchFile, isTorchLegacy, openTorchFile, type TorchFile } from '../../../src/io/pytorch/torch-file.js';
import { bytesReader } from '../../../src/io/zip.js';
import { zipBytes } from '../../helpers/npy-bytes.js';
import { elementsAt, PT } from '../../helpers/pt-reference.js';

const EXTRA = `${PT}/extra`;

async function open(file: string, key?: string): Promise<{ torch: TorchFile; bytes: Uint8Array }> {
  const bytes = readFileSync(file);
  return { torch: await openTorchFile(bytesReader(bytes, file), bytes.subarray(0, 64), file, { key }), bytes };
}

async function failure(file: string, key?: string): Promise<AvgCkptError> {
  try {
    await open(file, key);
  } catch (e) {
    if (e instanceof AvgCkptError) return e;
    throw e;
  }
  throw new Error(`${file} opened`);
}

/** What make.py stored in tensor i of `shape`. */
const expected = (i: number, n: number) => Array.from({ length: n }, (_, j) => (j + 10 * i) * 0.5);

async function values(file: string, key?: string): Promise<Record<string, number[]>> {
  const { torch, bytes } = await open(file, key);
  return Object.fromEntries(
    torch.tensors.map((t) => [t.name, elementsAt(bytes, t.dtype, t.shape, t.position, t.strides)]),
  );
}

describe('torch reader: layouts and protocols', () => {
  it('protocol 5, a legacy file in protocol 4, parameters and a nested --key read the same tensors', async () => {
    const want = { w: expected(0, 12), b: expected(1, 4) };
    expect(await values(`${EXTRA}/protocol5.pt`)).toEqual(want);
    expect(await values(`${EXTRA}/legacy-p4.pt`)).toEqual(want);
    expect(await values(`${EXTRA}/parameters.pt`)).toEqual(want);
    expect(await values(`${EXTRA}/nested.pt`, 'ema.module')).toEqual(want);
    expect(await values(`${EXTRA}/global-step.pt`)).toEqual(want);
    expect((await open(`${EXTRA}/global-step.pt`)).torch.step).toBe(7);
    expect((await open(`${EXTRA}/legacy-p4.pt`)).torch.layout).toBe('legacy');
  });

  it('every dtype torch 1.13 saves', async () => {
    const { torch, bytes } = await open(`${EXTRA}/dtypes.pt`);
    expect(torch.tensors.map((t) => t.dtype)).toEqual([
      'F64',
      'F32',
      'F16',
      'BF16',
      'I64',
      'I32',
      'I16',
      'I8',
      'U8',
      'BOOL',
    ]);
    for (const [i, t] of torch.tensors.entries()) {
      const got = elementsAt(bytes, t.dtype, t.shape, t.position, t.strides);
      const want =
        t.dtype === 'BOOL'
          ? [0, 1, 0, 1, 0, 1]
          : t.dtype === 'I8' || t.dtype === 'U8'
            ? [0, 1, 2, 3, 4, 5].map((j) => j + i)
            : t.dtype.startsWith('I')
              ? expected(i, 6).map(Math.trunc)
              : expected(i, 6);
      expect(got, t.name).toEqual(want);
    }
  });

  it('a big-endian file is marked for byte swapping', async () => {
    const { torch, bytes } = await open(`${EXTRA}/big-endian.pt`);
    expect(torch.tensors.every((t) => t.bigEndian)).toBe(true);
    const w = torch.tensors[0];
    const swapped = bytes.slice();
    for (let i = w.position; i < w.position + w.byteLength; i += 4) swapped.subarray(i, i + 4).reverse();
    expect(elementsAt(swapped, w.dtype, w.shape, w.position)).toEqual(expected(0, 12));
  });

  it('detects both formats by content', () => {
    const head = (f: string) => readFileSync(f).subarray(0, 64);
    expect(isTorchLegacy(head(`${EXTRA}/legacy-p4.pt`))).toBe(true);
    expect(isTorchLegacy(head(`${PT}/legacy/run/checkpoint_1_20.pt`))).toBe(true);
    expect(isTorchFile(head(`${EXTRA}/protocol5.pt`))).toBe(true);
    expect(isTorchFile(head(`${PT}/plainlm/ref.npz`))).toBe(true); // a zip: opening it says it is not torch's
    expect(isTorchFile(new TextEncoder().encode('{"__metadata__":{}}'))).toBe(false);
  });
});

describe('torch reader: choosing the state dict', () => {
  it('lists the top-level keys with their tensor counts when no usual key holds one', async () => {
    const e = await failure(`${EXTRA}/two-models.pt`);
    expect(e.code).toBe('no-state-dict');
    expect(e.oneLine()).toBe(
      `${EXTRA}/two-models.pt: holds no state dict under state_dict, model, model_state_dict, module, model_params: pass --key; top-level keys: generator (2 tensors), discriminator (2 tensors), epoch (0 tensors)`,
    );
    expect(Object.keys(await values(`${EXTRA}/two-models.pt`, 'discriminator'))).toEqual(['w', 'b']);
  });

  it('a --key that is missing or not a dict says so and lists the keys', async () => {
    expect((await failure(`${EXTRA}/nested.pt`, 'ema.modul')).oneLine()).toContain(
      'has no entry "ema.modul" (--key); top-level keys: ema (2 tensors), epoch (0 tensors)',
    );
    expect((await failure(`${EXTRA}/nested.pt`, 'epoch')).oneLine()).toContain(
      'entry "epoch" (--key) is a number, not a state dict',
    );
  });

  it('refuses an object inside the state dict, naming the global, but not one outside it', async () => {
    const e = await failure(`${EXTRA}/object-inside.pt`);
    expect([e.code, e.oneLine()]).toEqual([
      'unsafe-pickle',
      `${EXTRA}/object-inside.pt: tensor "cfg": refused: the state dict holds an object of argparse.Namespace, not a tensor; nothing was executed`,
    ]);
    // timm keeps an argparse.Namespace in `args`, outside the state dict: read past, never called
    expect((await open(`${PT}/timm/run/checkpoint-2.pth.tar`)).torch.tensors).toHaveLength(16);
  });

  it('refuses the malicious files by the global they name, with nothing executed', async () => {
    for (const [kind, global] of [
      ['system', 'posix.system'],
      ['eval', '__builtin__.eval'],
    ]) {
      const file = `${PT}/evil/${kind}/ckpt_step_200.pth`;
      const e = await failure(file);
      expect([e.code, e.oneLine()]).toEqual([
        'unsafe-pickle',
        `${file}: refused: the pickle names the global ${global} (${kind === 'system' ? 'module posix runs programs or touches files' : 'it evaluates code or reaches any object'}); nothing was executed`,
      ]);
    }
  });

  it('a Trainer training_args.bin holds no state dict', async () => {
    expect((await failure(`${PT}/hfbin/run/checkpoint-20/training_args.bin`)).code).toBe('no-state-dict');
  });
});

describe('torch reader: what newer torch versions write', () => {
  /** A zip with `data.pkl` built by `build` and one float32 storage record `0` of 0..11. */
  async function openBuilt(build: (p: PickleWriter) => void): Promise<{ f: TorchFile; values: number[] }> {
    const p = new PickleWriter().op(0x80, 0x02, 0x7d, 0x28); // PROTO 2, EMPTY_DICT, MARK
    build(p);
    const pkl = p.op(0x75, 0x2e).done(); // SETITEMS, STOP
    const data = new Uint8Array(Float32Array.from({ length: 12 }, (_, i) => i).buffer);
    const zip = zipBytes([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/data/0', data },
      { name: 'archive/.data/serialization_id', data: new Uint8Array(8) },
    ]);
    const f = await openTorchFile(bytesReader(zip, 'new.pt'), zip.subarray(0, 64), 'new.pt');
    const t = f.tensors[0];
    return { f, values: elementsAt(zip, t.dtype, t.shape, t.position, t.strides) };
  }
  const persistent = (p: PickleWriter, cls: string, numel: number) =>
    p.op(0x28).text('storage').global('torch', cls).text('0').text('cpu').int(numel).op(0x74, 0x51);

  it('_rebuild_tensor_v3 over an UntypedStorage (dtype from the call, sizes in bytes)', async () => {
    const { f, values: v } = await openBuilt((p) => {
      p.text('w').global('torch._utils', '_rebuild_tensor_v3').op(0x28);
      persistent(p, 'UntypedStorage', 48);
      p.int(4)
        .tuple([2, 4])
        .tuple([4, 1])
        .op(0x89)
        .global('collections', 'OrderedDict')
        .op(0x29, 0x52)
        .global('torch', 'float32')
        .op(0x4e, 0x74, 0x52);
    });
    expect([f.tensors[0].dtype, f.tensors[0].shape, f.tensors[0].byteLength]).toEqual(['F32', [2, 4], 32]);
    expect(v).toEqual([4, 5, 6, 7, 8, 9, 10, 11]); // from element offset 4
  });

  it('_rebuild_from_type_v2 of a Parameter (torch 2 tensor subclasses)', async () => {
    const { f, values: v } = await openBuilt((p) => {
      // _rebuild_from_type_v2(_rebuild_tensor_v2, Parameter, (storage, 0, (3, 4), (1, 3), False, OrderedDict()), {})
      p.text('w')
        .global('torch._tensor', '_rebuild_from_type_v2')
        .op(0x28)
        .global('torch._utils', '_rebuild_tensor_v2')
        .global('torch.nn.parameter', 'Parameter')
        .op(0x28);
      persistent(p, 'FloatStorage', 12);
      p.int(0)
        .tuple([3, 4])
        .tuple([1, 3])
        .op(0x89)
        .global('collections', 'OrderedDict')
        .op(0x29, 0x52, 0x74, 0x7d, 0x74, 0x52);
    });
    expect([f.tensors[0].shape, f.tensors[0].strides]).toEqual([
      [3, 4],
      [1, 3],
    ]);
    expect(v).toEqual([0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]); // a transposed view, read by strides
  });
});
