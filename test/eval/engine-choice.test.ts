/** Engine and budget decisions, from sizes alone (no tensors are built), and the Vulkan pre-check. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { vulkanMissing } from '../../src/eval/device.js';
import { chooseEngine, defaultMemoryBudget, RATES } from '../../src/eval/evaluator.js';

const GiB = 2 ** 30;
// a checkpoint stores 0.5625 GiB of bound float32 tensors; the mixture stacks 16 of them
const CK = (9 * GiB) / 16;
// many long averages: 20 candidates each reading all 16 checkpoints (the mixture pays off)
const facts = {
  k: 16,
  need: 9 * GiB,
  budget: 40 * GiB,
  candidates: 20,
  reads: 20 * 16 * CK,
  checkpointBytes: CK,
} as const;

describe('chooseEngine', () => {
  it("a stack over WebGPU's 2 GiB buffer limit no longer rules the mixture out: it is stacked in pieces", () => {
    // 16 checkpoints x 9/16 GiB, among them a 32000 x 4096 embedding: 8 GiB in one stack before the split
    for (const device of ['webgpu', 'cuda', 'cpu'] as const) {
      expect(chooseEngine({ ...facts, device, requested: 'auto' })).toMatchObject({
        kind: 'mixture',
        reason: expect.stringMatching(/fits the 40\.00 GiB memory budget/),
      });
      expect(chooseEngine({ ...facts, device, requested: 'mixture' }).kind).toBe('mixture');
    }
    expect(chooseEngine({ ...facts, device: 'webgpu', requested: 'materialize' }).kind).toBe('materialize');
  });

  it('falls back to fed on the budget and on an unsupported dtype', () => {
    expect(chooseEngine({ ...facts, device: 'cpu', requested: 'auto', budget: 8 * GiB }).reason).toMatch(
      /^fed: the mixture's 16 checkpoints x .* exceeds the 8\.00 GiB memory budget/,
    );
    expect(chooseEngine({ ...facts, device: 'cpu', requested: 'auto', unsupported: 'tensor "x" is I8' }).kind).toBe(
      'fed',
    );
    expect(() =>
      chooseEngine({ ...facts, device: 'cpu', requested: 'mixture', unsupported: 'tensor "x" is I8' }),
    ).toThrow(/use --engine fed/);
  });

  it('takes the mixture only when its setup and mixing cost less than averaging every candidate', () => {
    // mixture: 16 x 0.5625 GiB read at setup + 20 x 9 GiB mixed; fed: 320 checkpoint reads averaged
    const mix = (facts.k * CK) / RATES.mixtureSetup + (facts.candidates * facts.need) / RATES.mixing;
    const fed = facts.reads / RATES.averaging;
    expect(mix).toBeLessThan(fed);
    expect(chooseEngine({ ...facts, device: 'cpu', requested: 'auto' }).reason).toMatch(
      /^mixture: .*estimated \d+ s of setup and mixing against \d+ s of averaging for 20 candidates/,
    );
    // three short candidates (raw, LAWA-2, LAWA-4: 7 checkpoint reads): setting up the stacks does not pay
    const few = { ...facts, candidates: 3, reads: 7 * CK };
    expect((few.k * CK) / RATES.mixtureSetup + (few.candidates * few.need) / RATES.mixing).toBeGreaterThan(
      few.reads / RATES.averaging,
    );
    expect(chooseEngine({ ...few, device: 'cpu', requested: 'auto' })).toMatchObject({
      kind: 'fed',
      reason: expect.stringMatching(
        /^fed: estimated .* for 3 candidates \(the mixture's 16 checkpoints x .* would fit the 40\.00 GiB budget\)$/,
      ),
    });
  });
});

describe('defaultMemoryBudget', () => {
  const gpu = () => 10 * GiB;
  const ram = () => 4 * GiB;
  it('halves the GPU free memory on webgpu, takes 80% with cuda, half the free RAM otherwise', () => {
    expect(defaultMemoryBudget('webgpu', gpu, ram)).toBe(5 * GiB);
    expect(defaultMemoryBudget('cuda', gpu, ram)).toBe(8 * GiB);
    expect(defaultMemoryBudget('cpu', gpu, ram)).toBe(2 * GiB);
    expect(defaultMemoryBudget('webgpu', () => undefined, ram)).toBe(2 * GiB);
  });
});

describe('vulkanMissing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'avg-ckpt-vulkan-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const none = { ldCache: join(dir, 'no-cache'), libDirs: [], icdDirs: [] };
  const env = { HOME: dir, XDG_DATA_DIRS: join(dir, 'share') };

  it('needs the loader, then a driver manifest', () => {
    expect(vulkanMissing(env, none)).toMatch(/no Vulkan loader/);
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'lib/libvulkan.so.1'), '');
    const withLoader = { ...env, LD_LIBRARY_PATH: join(dir, 'lib') };
    expect(vulkanMissing(withLoader, none)).toMatch(/no Vulkan driver manifest/);
    expect(vulkanMissing({ ...withLoader, VK_ICD_FILENAMES: '/x/lvp.json' }, none)).toBeUndefined();
    mkdirSync(join(dir, 'share/vulkan/icd.d'), { recursive: true });
    writeFileSync(join(dir, 'share/vulkan/icd.d/nvidia_icd.json'), '{}');
    expect(vulkanMissing(withLoader, none)).toBeUndefined();
  });
});
