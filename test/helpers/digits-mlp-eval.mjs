#!/usr/bin/env node
/**
 * A stand-in for a user's evaluation script (CI has no torch): the validation loss of a
 * digits-mlp candidate written by avg-ckpt, computed here from its safetensors and the bundled
 * .npy files, independently of avg-ckpt's code. The model is the ONNX graph's
 * Gemm(transB) -> Relu -> Gemm -> Relu -> Gemm over tensors 0.*, 2.*, 4.*; float64 throughout.
 *
 * node digits-mlp-eval.mjs MODEL DATA_DIR
 * prints {"loss": ..., "accuracy": ...} as its last stdout line.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const [model, dataDir] = process.argv.slice(2);
const file = statSync(model).isDirectory() ? join(model, 'model.safetensors') : model;

function safetensors(path) {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (t.dtype !== 'F32') throw new Error(`${name}: ${t.dtype}, expected F32`);
    const [s, e] = t.data_offsets;
    const bytes = b.subarray(8 + n + s, 8 + n + e);
    out[name] = { shape: t.shape, data: Array.from({ length: (e - s) / 4 }, (_, i) => bytes.readFloatLE(4 * i)) };
  }
  return out;
}

/** A little-endian .npy (version 1) of <f4 or <i8, C order. */
function npy(path) {
  const b = readFileSync(path);
  const hl = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + hl).toString('latin1');
  const descr = /'descr': '([^']+)'/.exec(header)[1];
  const shape = /'shape': \(([^)]*)\)/
    .exec(header)[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const data = b.subarray(10 + hl);
  const count = shape.reduce((a, x) => a * x, 1);
  if (descr === '<f4') return { shape, data: Array.from({ length: count }, (_, i) => data.readFloatLE(4 * i)) };
  if (descr === '<i8')
    return { shape, data: Array.from({ length: count }, (_, i) => Number(data.readBigInt64LE(8 * i))) };
  throw new Error(`${path}: dtype ${descr}`);
}

/** y = x W^T + b for one row. */
function linear(x, w, bias) {
  const [outF, inF] = w.shape;
  return Array.from({ length: outF }, (_, o) => {
    let s = bias.data[o];
    for (let i = 0; i < inF; i++) s += x[i] * w.data[o * inF + i];
    return s;
  });
}

const t = safetensors(file);
const x = npy(join(dataDir, 'val_input.npy'));
const y = npy(join(dataDir, 'val_labels.npy'));
const [rows, features] = x.shape;
let loss = 0;
let correct = 0;
for (let r = 0; r < rows; r++) {
  const relu = (v) => v.map((z) => Math.max(0, z));
  const h1 = relu(linear(x.data.slice(r * features, (r + 1) * features), t['0.weight'], t['0.bias']));
  const h2 = relu(linear(h1, t['2.weight'], t['2.bias']));
  const logits = linear(h2, t['4.weight'], t['4.bias']);
  const max = Math.max(...logits);
  const lse = max + Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0));
  loss += lse - logits[y.data[r]];
  if (logits.indexOf(max) === y.data[r]) correct++;
}
console.log(`evaluated ${rows} rows of ${file}`);
console.log(JSON.stringify({ loss: loss / rows, accuracy: correct / rows }));
