/**
 * Merging the PyTorch reference runs (fixtures/pytorch): every recipe of every case's ref.npz,
 * written as safetensors and as .pt, equals the float64 reference computed in PyTorch rounded
 * once to the output dtype (f32: Math.fround; f16/bf16: checked to be the nearest-even pattern).
 * Weights come from the recipe definitions (helpers/pt-reference.ts), not from src/recipes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mergeToOutput } from '../../src/engine/merge.js';
import { readNpz } from '../../src/io/npy.js';
import { openTorchFile } from '../../src/io/pytorch/torch-file.js';
import { bytesReader } from '../../src/io/zip.js';
import { weightVector } from '../../src/recipes/weight-vector.js';
import { discoverSeries } from '../../src/series/discover.js';
import { CASES, elementsAt, PT, recipeWeights, type CaseName } from '../helpers/pt-reference.js';
import { tempDir } from '../helpers/st-bytes.js';
import { bf16ToNumber, f16ToNumber, isNearestEven16, readRef, type RefTensor } from '../helpers/st-reference.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

/** The output's tensors as raw little-endian element bytes, whichever format it was written in. */
async function outputTensors(path: string): Promise<Record<string, RefTensor>> {
  if (path.endsWith('.safetensors')) return readRef(path).tensors;
  const bytes = readFileSync(path);
  const f = await openTorchFile(bytesReader(bytes, path), bytes.subarray(0, 64), path);
  expect(f.tensors.every((t) => t.strides === undefined)).toBe(true);
  return Object.fromEntries(
    f.tensors.map((t) => [
      t.name,
      { dtype: t.dtype, shape: [...t.shape], bytes: bytes.subarray(t.position, t.position + t.byteLength) },
    ]),
  );
}

/** Index of the first element of `t` that is not `ref` rounded once to t's dtype, or -1. */
function firstOff(t: RefTensor, ref: number[]): number {
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  return ref.findIndex((x, i) => {
    switch (t.dtype) {
      case 'F32':
        return !Object.is(dv.getFloat32(i * 4, true), Math.fround(x));
      case 'F16':
        return !isNearestEven16(dv.getUint16(i * 2, true), x, f16ToNumber);
      case 'BF16':
        return !isNearestEven16(dv.getUint16(i * 2, true), x, bf16ToNumber);
      case 'I64':
        return Number(dv.getBigInt64(i * 8, true)) !== x;
      default:
        throw new Error(`dtype ${t.dtype}`);
    }
  });
}

async function mergeCase(name: CaseName, refFile: string, suffix: string, key?: string): Promise<number> {
  const series = await discoverSeries([join(PT, CASES[name].run)], { open: { key } });
  const steps = series.checkpoints.map((c) => c.step);
  const ref = await readNpz(join(PT, refFile));
  const recipes = [...new Set([...ref.keys()].map((k) => k.split('::')[0]))];
  let checked = 0;
  for (const recipe of recipes) {
    const vector = weightVector(recipe, 'weights', {}, steps, recipeWeights(recipe, steps.length));
    const output = join(tmp.dir, `${name}-${key ?? ''}-${recipe}${suffix}`);
    await mergeToOutput(series.checkpoints, vector, { output });
    const out = await outputTensors(output);
    for (const [refKey, arr] of ref) {
      if (!refKey.startsWith(`${recipe}::`)) continue;
      const tensor = refKey.slice(recipe.length + 2);
      const t = out[tensor];
      expect(t, `${output}: ${tensor}`).toBeDefined();
      expect([t.dtype, t.shape], tensor).toEqual([arr.dtype === 'int64' ? 'I64' : CASES[name].dtype, [...arr.shape]]);
      expect(
        firstOff(t, [...(arr.data as Float64Array | BigInt64Array)].map(Number)),
        `${recipe}::${tensor} (${suffix})`,
      ).toBe(-1);
      checked++;
    }
    expect(Object.keys(out).length).toBe(series.checkpoints[0].tensors.size);
  }
  return checked;
}

describe('merging the PyTorch reference runs', () => {
  for (const name of Object.keys(CASES) as CaseName[]) {
    for (const suffix of ['.safetensors', '.pt']) {
      it(`${name} -> ${suffix}: every recipe of ref.npz, bit-identical`, async () => {
        expect(await mergeCase(name, `${name}/ref.npz`, suffix)).toBeGreaterThan(8);
      });
    }
  }
  it('timm --key state_dict_ema -> .safetensors: ref_ema_key.npz', async () => {
    expect(await mergeCase('timm', 'timm/ref_ema_key.npz', '.safetensors', 'state_dict_ema')).toBe(16);
  });

  it('a .pt output keeps tied names on one storage (plainLM head, views emb/head)', async () => {
    for (const [name, a, b] of [
      ['plainlm', '_orig_mod.wte.weight', '_orig_mod.lm_head.weight'],
      ['views', 'emb', 'head'],
    ]) {
      const series = await discoverSeries([join(PT, CASES[name as CaseName].run)]);
      const n = series.checkpoints.length;
      const output = join(tmp.dir, `tied-${name}.pt`);
      await mergeToOutput(
        series.checkpoints,
        weightVector(
          'u',
          'weights',
          {},
          series.checkpoints.map((c) => c.step),
          new Array(n).fill(1 / n),
        ),
        { output },
      );
      const bytes = readFileSync(output);
      const f = await openTorchFile(bytesReader(bytes, output), bytes.subarray(0, 64), output);
      const [ta, tb] = [f.tensors.find((t) => t.name === a)!, f.tensors.find((t) => t.name === b)!];
      expect([tb.storage, tb.position]).toEqual([ta.storage, ta.position]);
      expect(elementsAt(bytes, tb.dtype, tb.shape, tb.position)).toEqual(
        elementsAt(bytes, ta.dtype, ta.shape, ta.position),
      );
    }
  });

  it('the malicious runs are refused with nothing executed and nothing written', async () => {
    for (const kind of ['system', 'eval']) {
      const output = join(tmp.dir, `evil-${kind}.safetensors`);
      await expect(discoverSeries([join(PT, 'evil', kind)])).rejects.toMatchObject({ code: 'unsafe-pickle' });
      expect(existsSync(output)).toBe(false);
    }
    expect(existsSync('PWNED')).toBe(false);
    expect(readdirSync(tmp.dir).filter((f) => f.startsWith('evil') || f.startsWith('.'))).toEqual([]);
  });
});
