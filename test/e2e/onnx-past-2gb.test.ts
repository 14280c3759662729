/**
 * A real ONNX model past protobuf's 2 GiB, kept cheap: a 2 GiB + 64 KiB float32 table that no
 * checkpoint holds, in a sparse external data file (ftruncate: zeros but for two rows), and a
 * tiny weight `w` averaged from three checkpoints. y = x·w + table[idx] (an embedding lookup;
 * the indices are an input, so that onnxruntime maps the table instead of constant-folding a
 * copy of it: 4 GiB and 6 s more per session, measured).
 * sweep-window loads it without reading the table, scores it, and --emit-onnx must write the
 * graph + OUT.data pair (one file cannot hold it); onnxruntime loads the pair and its output
 * equals a float64 reference computed here; the bytes at the external offsets are checked too.
 */
import { closeSync, ftruncateSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { externalRef, loadModel, onnx, setExternal, tensorBytes, type TensorProto } from '../../src/io/onnx/model.js';
import { encodeModel } from '../../src/io/onnx/model.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { npyBytes } from '../helpers/npy-bytes.js';
import { f32Bytes, writeRef } from '../helpers/st-reference.js';
import { tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir('avg-ckpt-onnx-2gb-');
beforeAll(ensureBuilt);
afterAll(tmp.cleanup);
const MiB = 1 << 20;

const D = 3; // input features
const C = 4; // outputs, and the table's row length
const ROWS = 2 ** 27 + 4096; // 2 GiB + 64 KiB of float32 rows of C
const TABLE_BYTES = ROWS * C * 4;
const LAST = Float32Array.from([0.5, -1.25, 2, 3.75]);
const FIRST = Float32Array.from([9, 9, 9, 9]); // a row the graph does not read, at the table's start
/** The three checkpoints' w [D, C], step 100, 200, 300. */
const W = [1, 2, 3].map((k) => Float32Array.from({ length: D * C }, (_, i) => Math.sin(k * 7 + i) / (k + 1)));
const X = Float32Array.from([0.25, -2, 1.5, 3, 0.125, -0.75]); // 2 rows of D
const IDX = BigInt64Array.from([BigInt(ROWS - 1), 0n]); // row 0 reads the last row of the table, row 1 the first
const ROW = [LAST, FIRST];
const START = 4096;

function buildModel(dir: string): string {
  // the table at offset 4096 (something else before it); zeros but for the first and last row
  const data = join(dir, 'model.onnx.data');
  const fd = openSync(data, 'w');
  try {
    ftruncateSync(fd, START + TABLE_BYTES);
    writeSync(fd, Buffer.from('not-a-table!'), 0, 12, 0);
    writeSync(fd, Buffer.from(FIRST.buffer), 0, 16, START);
    writeSync(fd, Buffer.from(LAST.buffer), 0, 16, START + TABLE_BYTES - 16);
  } finally {
    closeSync(fd);
  }
  const table: TensorProto = { name: 'table', dataType: 1, dims: [ROWS, C] };
  setExternal(table, 'model.onnx.data', START, TABLE_BYTES);
  const model = onnx.ModelProto.fromObject({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'past_2gb',
      initializer: [{ name: 'w', dataType: 1, dims: [D, C], rawData: new Uint8Array(W[2].buffer.slice(0)) }, table],
      node: [
        { opType: 'MatMul', input: ['x', 'w'], output: ['xw'] },
        { opType: 'Gather', input: ['table', 'idx'], output: ['row'], attribute: [{ name: 'axis', type: 2, i: 0 }] },
        { opType: 'Add', input: ['xw', 'row'], output: ['y'] },
      ],
      input: [
        { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }, { dimValue: D }] } } } },
        { name: 'idx', type: { tensorType: { elemType: 7, shape: { dim: [{ dimParam: 'n' }] } } } },
      ],
      output: [
        { name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }, { dimValue: C }] } } } },
      ],
    },
  });
  const path = join(dir, 'model.onnx');
  writeFileSync(path, encodeModel(model));
  return path;
}

/** The baked weight as the test computes it: the float64 mean of the three, rounded once to float32. */
const wAvg = Float32Array.from({ length: D * C }, (_, i) => (W[0][i] + W[1][i] + W[2][i]) / 3);

/** y = x·wAvg + table[idx] in float64, row by row. */
function reference(): number[] {
  const y: number[] = [];
  for (let n = 0; n < 2; n++)
    for (let c = 0; c < C; c++) {
      let v = ROW[n][c];
      for (let d = 0; d < D; d++) v += X[n * D + d] * wAvg[d * C + c];
      y.push(v);
    }
  return y;
}

describe('an ONNX model past 2 GiB', () => {
  let model: string;
  beforeAll(() => {
    model = buildModel(tmp.dir);
    for (const [k, w] of W.entries())
      writeRef(join(tmp.dir, 'run', `checkpoint-${100 * (k + 1)}`, 'model.safetensors'), {
        w: { dtype: 'F32', shape: [D, C], bytes: new Uint8Array(w.buffer) },
      });
    writeFileSync(join(tmp.dir, 'x.npy'), npyBytes('<f4', [2, D], new Uint8Array(X.buffer)));
    writeFileSync(join(tmp.dir, 'idx.npy'), npyBytes('<i8', [2], new Uint8Array(IDX.buffer)));
    // targets: the reference output of the 3-checkpoint average, so that lawa-3 wins (mse ~0)
    writeFileSync(join(tmp.dir, 'y.npy'), npyBytes('<f4', [2, C], f32Bytes(reference())));
  });

  it('loads without reading the table', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const m = await loadModel(model);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * MiB);
    expect(externalRef(m.proto.graph!.initializer![1], m.dir, m.path)).toMatchObject({
      offset: START,
      length: TABLE_BYTES,
    });
  });

  it('sweep-window --emit-onnx writes the graph + OUT.data, which onnxruntime runs to the float64 reference', async () => {
    const out = join(tmp.dir, 'out', 'best.onnx');
    const r = await runCli(
      [
        'sweep-window',
        join(tmp.dir, 'run'),
        '--onnx',
        model,
        '--input',
        `x=${join(tmp.dir, 'x.npy')}`,
        '--input',
        `idx=${join(tmp.dir, 'idx.npy')}`,
        '--labels',
        join(tmp.dir, 'y.npy'),
        '--windows',
        '3',
        '--allow-unmapped',
        '--device',
        'cpu',
        '--engine',
        'fed',
        '--emit-onnx',
        out,
        '--quiet',
        '--json',
      ],
      { timeoutMs: 120_000, measureMemory: true },
    );
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.best).toBe('lawa-3');
    expect(report.written).toEqual([out, `${out}.data`]);
    const dataFile = `${out}.data`;
    // written a tensor at a time: far below the 2 GiB a whole-model encoding would hold
    expect(r.maxRss!).toBeLessThan(1024 * MiB);

    // the graph, read with our own reader; the bytes at each external offset
    const baked = await loadModel(out);
    const inits = new Map(baked.proto.graph!.initializer!.map((t) => [t.name!, t]));
    const tableRef = externalRef(inits.get('table')!, baked.dir, baked.path)!;
    expect(tableRef).toMatchObject({ location: 'best.onnx.data', length: TABLE_BYTES });
    expect(tableRef.offset % 4096).toBe(0);
    expect(statSync(dataFile).size).toBeGreaterThanOrEqual(tableRef.offset + TABLE_BYTES);
    expect(statSync(dataFile).blocks * 512).toBeLessThan(16 * MiB); // zeros stayed holes
    const at = (offset: number, length: number) => {
      const b = Buffer.alloc(length);
      const fd = openSync(dataFile, 'r');
      try {
        readSync(fd, b, 0, length, offset);
      } finally {
        closeSync(fd);
      }
      return b;
    };
    expect(at(tableRef.offset, 16)).toEqual(Buffer.from(FIRST.buffer));
    expect(at(tableRef.offset + 16, 4096).every((v) => v === 0)).toBe(true);
    expect(at(tableRef.offset + TABLE_BYTES - 16, 16)).toEqual(Buffer.from(LAST.buffer));
    // w is 48 bytes: inline in the graph, the float64 average rounded once
    expect(Buffer.from(await tensorBytes(inits.get('w')!, baked))).toEqual(Buffer.from(wAvg.buffer));

    const session = await ort.InferenceSession.create(out);
    try {
      const feeds = { x: new ort.Tensor('float32', X, [2, D]), idx: new ort.Tensor('int64', IDX, [2]) };
      const y = (await session.run(feeds)).y.data as Float32Array;
      reference().forEach((ref, i) => expect(Math.abs(y[i] - ref), `y[${i}]`).toBeLessThan(1e-5));
    } finally {
      await session.release();
    }
    rmSync(join(tmp.dir, 'out'), { recursive: true, force: true });
  }, 180_000);
});
