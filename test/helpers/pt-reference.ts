/**
 * The PyTorch reference runs (fixtures/pytorch, copied from shared/reference-runs/pytorch): their
 * checkpoints in step order, the recipes of their ref.npz with weights computed here from the
 * definitions in the runs' README (not by src/recipes), and a plain element reader.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bf16ToNumber, f16ToNumber } from './st-reference.js';

export const PT = 'fixtures/pytorch';

/** case -> how its checkpoint files are named; the step is the last number in the path. */
export const CASES = {
  plainlm: { run: 'plainlm/run', dtype: 'F32' },
  timm: { run: 'timm/run', dtype: 'F32' },
  lightning: { run: 'lightning/run', dtype: 'F32' },
  hfbin: { run: 'hfbin/run', dtype: 'BF16' },
  legacy: { run: 'legacy/run', dtype: 'F32' },
  views: { run: 'views/run', dtype: 'F16' },
} as const;
export type CaseName = keyof typeof CASES;

/** The checkpoint files of a case, oldest first, with their steps. */
export function checkpointsOf(name: CaseName): { file: string; step: number }[] {
  const dir = join(PT, CASES[name].run);
  const out = readdirSync(dir).map((entry) => {
    const full = join(dir, entry);
    const file = statSync(full).isDirectory() ? join(full, 'pytorch_model.bin') : full;
    const nums = entry.match(/\d+/g) ?? [];
    return { file, step: Number(nums[nums.length - 1]) };
  });
  return out.sort((a, b) => a.step - b.step);
}

/** Weights of `lawa-k` (k newest, uniform) or `ema-g` (ema_1 = first, ema_i = g ema_(i-1) + (1-g) theta_i). */
export function recipeWeights(recipe: string, n: number): number[] {
  const [kind, param] = recipe.split('-');
  const w = new Array<number>(n).fill(0);
  if (kind === 'lawa') {
    const k = Number(param);
    for (let i = n - k; i < n; i++) w[i] = 1 / k;
    return w;
  }
  const g = Number(param);
  w[0] = 1;
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) w[j] *= g;
    w[i] = 1 - g;
  }
  return w;
}

const SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Elements of a tensor in C order, read by hand from its position, shape and element strides. */
export function elementsAt(
  bytes: Uint8Array,
  dtype: string,
  shape: readonly number[],
  position: number,
  strides?: readonly number[],
): number[] {
  const size = SIZE[dtype];
  const st = strides ?? shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const numel = shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let flat = 0; flat < numel; flat++) {
    let rest = flat;
    let off = 0;
    for (let d = shape.length - 1; d >= 0; d--) {
      off += (rest % shape[d]) * st[d];
      rest = Math.floor(rest / shape[d]);
    }
    const at = position + off * size;
    out.push(
      dtype === 'F64'
        ? dv.getFloat64(at, true)
        : dtype === 'F32'
          ? dv.getFloat32(at, true)
          : dtype === 'F16'
            ? f16ToNumber(dv.getUint16(at, true))
            : dtype === 'BF16'
              ? bf16ToNumber(dv.getUint16(at, true))
              : dtype === 'I64'
                ? Number(dv.getBigInt64(at, true))
                : dtype === 'I32'
                  ? dv.getInt32(at, true)
                  : dtype === 'I16'
                    ? dv.getInt16(at, true)
                    : dtype === 'I8'
                      ? dv.getInt8(at)
                      : bytes[at],
    );
  }
  return out;
}
