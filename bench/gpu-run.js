#!/usr/bin/env node
/**
 * A synthetic training run for bench/gpu.sh: an MLP of AVG_GPU_LAYERS (16) float32 layers of
 * AVG_GPU_WIDTH^2 (4096: 64 MiB each, 1 GiB per checkpoint) plus a 10-class head, saved as
 * AVG_GPU_CKPTS (16) checkpoints `run/checkpoint-<step>/model.safetensors`, with `model.onnx`
 * (initializers stored as external data inside the newest checkpoint, so the graph file stays
 * small and holds that checkpoint's values) and `input.npy` / `labels.npy` (AVG_GPU_ROWS, 512).
 * Usage: node bench/gpu-run.js DIR. Needs `npm run build` (it uses the project's ONNX helpers).
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { encodeModel, onnx, setExternal } from '../dist/io/onnx/model.js';
import { npyBytes, safetensorsHeader } from './files.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node bench/gpu-run.js DIR');
const CKPTS = Number(process.env.AVG_GPU_CKPTS ?? 16);
const H = Number(process.env.AVG_GPU_WIDTH ?? 4096);
const LAYERS = Number(process.env.AVG_GPU_LAYERS ?? 16);
const ROWS = Number(process.env.AVG_GPU_ROWS ?? 512);
const CLASSES = 10;

const tensors = [];
for (let l = 0; l < LAYERS; l++)
  tensors.push({ name: `layers.${l}.weight`, shape: [H, H] }, { name: `layers.${l}.bias`, shape: [H] });
tensors.push({ name: 'head.weight', shape: [CLASSES, H] }, { name: 'head.bias', shape: [CLASSES] });

/** xorshift32 uniforms in [-scale, scale), deterministic per seed. */
function fill(out, seed, scale, add = false) {
  let x = seed | 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const v = ((x >>> 0) / 2 ** 31 - 1) * scale;
    out[i] = add ? out[i] + v : v;
  }
  return out;
}

/** Writes one safetensors file; returns each tensor's absolute byte offset in it. */
function writeCheckpoint(path, ck) {
  const head = safetensorsHeader(
    tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, bytes: t.shape.reduce((a, b) => a * b, 1) * 4 })),
  );
  const fd = openSync(path, 'w');
  writeSync(fd, head);
  let offset = head.length;
  const positions = new Map();
  tensors.forEach((t, j) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    // He-scaled base shared by all checkpoints, plus a small per-checkpoint drift
    const v = fill(new Float32Array(n), 7919 * (j + 1), Math.sqrt(6 / H));
    fill(v, 104729 * (ck + 1) + j, 0.01 * Math.sqrt(6 / H), true);
    positions.set(t.name, offset);
    offset += v.byteLength;
    writeSync(fd, new Uint8Array(v.buffer));
  });
  closeSync(fd);
  return positions;
}

let positions;
let newest;
for (let ck = 0; ck < CKPTS; ck++) {
  const step = (ck + 1) * 100;
  const folder = join(dir, 'run', `checkpoint-${step}`);
  mkdirSync(folder, { recursive: true });
  positions = writeCheckpoint(join(folder, 'model.safetensors'), ck);
  newest = `run/checkpoint-${step}/model.safetensors`;
}

const vi = (name, dims) => ({
  name,
  type: {
    tensorType: {
      elemType: 1,
      shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
    },
  },
});
const node = [];
let x = 'input';
for (let l = 0; l <= LAYERS; l++) {
  const p = l < LAYERS ? `layers.${l}` : 'head';
  const y = l < LAYERS ? `h${l}` : 'logits';
  node.push({
    opType: 'Gemm',
    input: [x, `${p}.weight`, `${p}.bias`],
    output: [y],
    attribute: [{ name: 'transB', type: 2, i: 1 }],
  });
  x = y;
  if (l < LAYERS) node.push({ opType: 'Relu', input: [y], output: [(x = `r${l}`)] });
}
const initializer = tensors.map((t) => {
  const proto = { name: t.name, dataType: 1, dims: t.shape };
  setExternal(proto, newest, positions.get(t.name), t.shape.reduce((a, b) => a * b, 1) * 4);
  return proto;
});
const model = onnx.ModelProto.fromObject({
  irVersion: 8,
  opsetImport: [{ domain: '', version: 17 }],
  graph: {
    name: 'synthetic-mlp',
    node,
    initializer,
    input: [vi('input', ['batch', H])],
    output: [vi('logits', ['batch', CLASSES])],
  },
});
writeFileSync(join(dir, 'model.onnx'), encodeModel(model));
writeFileSync(join(dir, 'input.npy'), npyBytes('<f4', [ROWS, H], fill(new Float32Array(ROWS * H), 31337, 1)));
writeFileSync(
  join(dir, 'labels.npy'),
  npyBytes(
    '<i8',
    [ROWS],
    BigInt64Array.from({ length: ROWS }, (_, i) => BigInt((i * 7) % CLASSES)),
  ),
);
process.stdout.write(
  `gpu-run: ${CKPTS} checkpoints x ${((tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0) * 4) / 2 ** 30).toFixed(3)} GiB in ${dir}\n`,
);
