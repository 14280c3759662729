/**
 * The torch reader against real `torch.save` files (fixtures/pytorch): every tensor of every
 * checkpoint, read by position and strides, sums with the recipe's weights to the float64
 * reference computed in PyTorch (ref.npz), and the file's layout details come out as torch has them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readNpz } from '../../../src/io/npy.js';
import { openTorchFile, type TorchFile } from '../../../src/io/pytorch/torch-file.js';
import { bytesReader } from '../../../src/io/zip.js';
import { CASES, checkpointsOf, elementsAt, PT, recipeWeights, type CaseName } from '../../helpers/pt-reference.js';

async function open(file: string, key?: string): Promise<{ torch: TorchFile; bytes: Uint8Array }> {
  const bytes = readFileSync(file);
  return { torch: await openTorchFile(bytesReader(bytes, file), bytes.subarray(0, 64), file, { key }), bytes };
}

async function checkAgainstRef(name: CaseName, refFile: string, key?: string): Promise<number> {
  const cks = checkpointsOf(name);
  const opened = await Promise.all(cks.map((c) => open(c.file, key)));
  const ref = await readNpz(`${PT}/${refFile}`);
  let checked = 0;
  for (const [refKey, arr] of ref) {
    const [recipe, tensor] = refKey.split('::');
    const w = recipeWeights(recipe, cks.length);
    const sources = opened.map(({ torch }) => torch.tensors.find((t) => t.name === tensor));
    expect(
      sources.every((s) => s !== undefined),
      `${refKey} in every checkpoint`,
    ).toBe(true);
    const s0 = sources[0]!;
    expect([...s0.shape], refKey).toEqual([...arr.shape]);
    const expected = [...(arr.data as Float64Array | BigInt64Array)].map(Number);
    if (s0.dtype.startsWith('I')) {
      const newest = sources[sources.length - 1]!;
      expect(
        elementsAt(opened[opened.length - 1].bytes, newest.dtype, newest.shape, newest.position, newest.strides),
      ).toEqual(expected);
    } else {
      const sum = new Float64Array(expected.length);
      sources.forEach((s, i) => {
        if (w[i] === 0) return;
        elementsAt(opened[i].bytes, s!.dtype, s!.shape, s!.position, s!.strides).forEach(
          (v, j) => (sum[j] += w[i] * v),
        );
      });
      const off = expected.findIndex((x, j) => !(Math.abs(sum[j] - x) <= 1e-12 * Math.max(1, Math.abs(x))));
      expect(off, `${refKey}: first element off the reference`).toBe(-1);
    }
    checked++;
  }
  return checked;
}

describe('torch reader against the PyTorch reference runs', () => {
  for (const name of Object.keys(CASES) as CaseName[]) {
    it(`${name}: every tensor of every recipe in ref.npz`, async () => {
      expect(await checkAgainstRef(name, `${name}/ref.npz`)).toBeGreaterThan(8);
    });
  }
  it('timm: --key state_dict_ema picks the EMA weights (ref_ema_key.npz)', async () => {
    expect(await checkAgainstRef('timm', 'timm/ref_ema_key.npz', 'state_dict_ema')).toBe(16);
  });

  it('reads the layouts as written: keys, steps, dtypes, shared storages and views', async () => {
    const plain = (await open(`${PT}/plainlm/run/ckpt_step_150.pth`)).torch;
    expect([plain.layout, plain.key, plain.step, plain.tensors.length]).toEqual(['zip', 'state_dict', 150, 29]);
    const byName = new Map(plain.tensors.map((t) => [t.name, t]));
    expect(byName.get('_orig_mod.lm_head.weight')!.storage).toBe(byName.get('_orig_mod.wte.weight')!.storage);
    expect(byName.get('_orig_mod.lm_head.weight')!.position).toBe(byName.get('_orig_mod.wte.weight')!.position);

    const light = (await open(`${PT}/lightning/run/epoch=3-step=100.ckpt`)).torch;
    expect([light.key, light.step, light.tensors[0].name]).toEqual(['state_dict', 100, 'model.conv1.weight']);
    const timm = (await open(`${PT}/timm/run/checkpoint-3.pth.tar`)).torch;
    expect(timm.key).toBe('state_dict');
    expect(timm.tensors.find((t) => t.name.endsWith('num_batches_tracked'))?.dtype).toBe('I64');
    const hf = (await open(`${PT}/hfbin/run/checkpoint-40/pytorch_model.bin`)).torch;
    expect([hf.key, hf.tensors[0].dtype, hf.tensors.some((t) => t.name === 'lm_head.weight')]).toEqual([
      '',
      'BF16',
      false,
    ]);
    const legacy = (await open(`${PT}/legacy/run/checkpoint_2_40.pt`)).torch;
    expect([legacy.layout, legacy.key]).toEqual(['legacy', 'model']);

    const views = (await open(`${PT}/views/run/step_000300.pt`)).torch;
    const v = new Map(views.tensors.map((t) => [t.name, t]));
    expect(v.get('attn.k')!.storage).toBe(v.get('attn.q')!.storage);
    expect(v.get('attn.k')!.position - v.get('attn.q')!.position).toBe(1024 * 2);
    expect(v.get('attn.v')!.position - v.get('attn.q')!.position).toBe(2048 * 2);
    expect(v.get('fc.weight_t')!.strides).toEqual([1, 24]);
    expect(v.get('attn.q')!.strides).toBeUndefined();
    expect(v.get('head')!.position).toBe(v.get('emb')!.position);
    const empty = views.tensors.find((t) => t.shape.includes(0))!;
    expect([empty.shape, empty.byteLength]).toEqual([[0, 4], 0]);
    expect(views.tensors.find((t) => t.shape.length === 0)?.byteLength).toBe(2);
  });
});
