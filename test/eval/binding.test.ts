/**
 * Binding checkpoint tensors to graphs the way exporters really write them: renamed weights,
 * transposed constant-folded copies, wrapper prefixes, external data, and weights that match
 * nothing (refused). Variants are made from the digits-mlp export; scores must still equal the
 * PyTorch oracle, since a wrong binding would score stale weights.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import oracle from '../../fixtures/runs/oracle.json' with { type: 'json' };
import { bindingRows, bindModel, describeBinding, normalizeName, parseMapRule } from '../../src/eval/binding.js';
import { Evaluator } from '../../src/eval/evaluator.js';
import {
  dimsOf,
  encodeModel,
  floatValues,
  loadModel,
  onnx,
  setExternal,
  tensorBytes,
  type ModelProto,
} from '../../src/io/onnx/model.js';
import { lawa } from '../../src/recipes/lawa.js';
import { discoverSeries } from '../../src/series/discover.js';
import type { Checkpoint } from '../../src/series/checkpoint.js';

const RUN = 'fixtures/runs/digits-mlp';
const LAWA8 = (oracle as unknown as { cases: Record<string, { lawa_end: Record<string, { loss: number }> }> }).cases[
  'digits-mlp'
].lawa_end['8'].loss;
const tmp = mkdtempSync(join(tmpdir(), 'avg-ckpt-binding-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let checkpoints: Checkpoint[];
let base: ModelProto;
beforeAll(async () => {
  checkpoints = [...(await discoverSeries([`${RUN}/run`])).checkpoints];
  base = (await loadModel(`${RUN}/model.onnx`)).proto;
});

function variant(name: string, edit: (m: ModelProto) => void): string {
  const m = onnx.ModelProto.decode(encodeModel(base));
  edit(m);
  const path = join(tmp, name);
  writeFileSync(path, encodeModel(m));
  return path;
}

const init = (m: ModelProto, name: string) => m.graph!.initializer!.find((t) => t.name === name)!;
function rename(m: ModelProto, from: string, to: string): void {
  init(m, from).name = to;
  for (const n of m.graph!.node!) n.input = n.input!.map((i) => (i === from ? to : i));
}

/** What exporters do: a renamed weight, a transposed folded copy, a wrapper prefix. */
function exporterStyle(m: ModelProto): void {
  rename(m, '0.weight', 'onnx::Gemm_17');
  rename(m, '4.bias', 'model.4.bias');
  const w = init(m, '2.weight');
  const [rows, cols] = dimsOf(w);
  const v = floatValues(1, w.rawData!);
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = v[r * cols + c];
  w.rawData = new Uint8Array(t.buffer);
  w.dims = [cols, rows];
  rename(m, '2.weight', '/2/Transpose_output_0');
  m.graph!.node![2].attribute = m.graph!.node![2].attribute!.map((a) => (a.name === 'transB' ? { ...a, i: 0 } : a));
}

describe('binding', () => {
  it('strips wrapper prefixes', () => {
    expect(normalizeName('_orig_mod.module.model.layers.0.w')).toBe('layers.0.w');
    expect(() => parseMapRule('no-arrow')).toThrow(/REGEX=>REPLACEMENT/);
  });

  it('finds renamed and transposed weights by value and scores the oracle with both engines', async () => {
    const path = variant('exported.onnx', exporterStyle);
    const rows = await describeBinding(path, checkpoints);
    expect(rows.find((r) => r.initializer === 'onnx::Gemm_17')).toMatchObject({
      status: 'weight',
      source: '0.weight',
      via: 'value',
    });
    expect(rows.find((r) => r.initializer === '/2/Transpose_output_0')).toMatchObject({
      status: 'weight',
      source: '2.weight (transposed)',
      via: 'value',
      shape: '[128, 128]',
    });
    expect(rows.find((r) => r.initializer === 'model.4.bias')).toMatchObject({ source: '4.bias', via: 'name' });
    for (const engine of ['mixture', 'materialize', 'fed'] as const) {
      const ev = await Evaluator.create({ onnx: path, checkpoints, data: { dataDir: RUN }, engine, device: 'cpu' });
      try {
        const m = await ev.score(
          lawa(
            checkpoints.map((c) => c.step),
            8,
          ),
        );
        expect(Math.abs(m.loss - LAWA8)).toBeLessThan(1e-5);
      } finally {
        await ev.close();
      }
    }
  });

  it('refuses float initializers that match nothing, naming each with its shape, unless allowed', async () => {
    const path = variant('stale.onnx', (m) => {
      rename(m, '0.bias', 'layer0.b');
      init(m, 'layer0.b').rawData = new Uint8Array(new Float32Array(128).fill(0.25).buffer);
    });
    const model = await loadModel(path);
    await expect(bindModel(model, checkpoints)).rejects.toMatchObject({
      code: 'unmapped-initializers',
      file: path,
      message: expect.stringMatching(/"layer0\.b" \[128\].*do_constant_folding=False.*--map.*--allow-unmapped/),
    });
    const allowed = await bindModel(model, checkpoints, { allowUnmapped: true });
    expect(bindingRows(allowed).find((r) => r.initializer === 'layer0.b')?.status).toBe('unmapped');
    // a --map rule binds it by name even though the graph's values are stale
    const mapped = await bindModel(model, checkpoints, { maps: [parseMapRule('^layer(\\d+)\\.b$=>$1.bias')] });
    expect(mapped.weights.find((w) => w.initializer === 'layer0.b')).toMatchObject({ source: '0.bias', via: 'map' });
  });

  it('a graph none of whose float initializers the run supplies is another model: refused even with allowUnmapped', async () => {
    const path = variant('foreign.onnx', (m) => {
      for (const t of [...m.graph!.initializer!]) {
        t.rawData = new Uint8Array(Float32Array.from(floatValues(1, t.rawData!), (_, i) => Math.cos(i)).buffer);
        rename(m, t.name!, `net.${t.name}`);
      }
    });
    const model = await loadModel(path);
    for (const allowUnmapped of [false, true]) {
      await expect(bindModel(model, checkpoints, { allowUnmapped })).rejects.toMatchObject({
        code: 'model-mismatch',
        file: path,
        message: expect.stringMatching(
          /^this model does not belong to these checkpoints: 0 of 6 float initializers match/,
        ),
      });
    }
  });

  it('reads weights stored as external data', async () => {
    const data = join(tmp, 'ext.onnx.data');
    const chunks: Uint8Array[] = [];
    let offset = 0;
    const m = onnx.ModelProto.decode(encodeModel(base));
    for (const t of m.graph!.initializer!) {
      const bytes = await tensorBytes(t, { path: '', dir: '', proto: m });
      chunks.push(bytes);
      setExternal(t, 'ext.onnx.data', offset, bytes.byteLength);
      offset += bytes.byteLength;
    }
    writeFileSync(data, Buffer.concat(chunks));
    writeFileSync(join(tmp, 'ext.onnx'), encodeModel(m));
    const rows = await describeBinding(join(tmp, 'ext.onnx'), checkpoints);
    expect(rows.every((r) => r.status === 'weight' && r.via === 'name')).toBe(true);
    const ev = await Evaluator.create({
      onnx: join(tmp, 'ext.onnx'),
      checkpoints,
      data: { dataDir: RUN },
      engine: 'materialize',
      device: 'cpu',
    });
    try {
      expect(
        Math.abs(
          (
            await ev.score(
              lawa(
                checkpoints.map((c) => c.step),
                8,
              ),
            )
          ).loss - LAWA8,
        ),
      ).toBeLessThan(1e-5);
    } finally {
      await ev.close();
    }
  });
});
