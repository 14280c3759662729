/** loadCheckpoint: single files, folders, sharded indexes and every index fault. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { AvgCkptError, type ErrorCode } from '../../src/errors.js';
import { loadCheckpoint } from '../../src/series/checkpoint.js';
import { f32, i64, put, putSharded, simpleCkpt, stFile, tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);
let n = 0;
const dir = () => {
  const d = join(tmp.dir, `c${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

async function failure(p: string): Promise<AvgCkptError> {
  const e = await loadCheckpoint(p).then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AvgCkptError);
  return e as AvgCkptError;
}

const A = { name: 'a', dtype: 'F32', shape: [2], data: f32(1, 2) };
const B = { name: 'b', dtype: 'I64', shape: [1], data: i64(7) };
const C = { name: 'c', dtype: 'F32', shape: [], data: f32(3) };

describe('loadCheckpoint layouts', () => {
  it('a single file: tensors with absolute positions and metadata', async () => {
    const p = put(join(dir(), 'x.safetensors'), stFile([A, B], { step: '5' }));
    const ck = await loadCheckpoint(p);
    expect(ck.isFolder).toBe(false);
    expect(ck.files).toEqual([p]);
    expect(ck.metadata).toEqual({ step: '5' });
    expect(ck.bytes).toBe(16);
    const a = ck.tensors.get('a')!;
    const b = ck.tensors.get('b')!;
    expect(b.position - a.position).toBe(8);
    expect(a.byteLength).toBe(8);
    expect(b.dtype).toBe('I64');
  });
  it('a folder with model.safetensors (other files ignored)', async () => {
    const d = dir();
    put(join(d, 'model.safetensors'), stFile([A]));
    put(join(d, 'optimizer.pt'), 'xx');
    const ck = await loadCheckpoint(d);
    expect(ck.isFolder).toBe(true);
    expect(ck.dir).toBe(d);
    expect([...ck.tensors.keys()]).toEqual(['a']);
  });
  it('a folder with one differently named .safetensors file', async () => {
    const d = dir();
    put(join(d, 'weights.safetensors'), stFile([A]));
    expect([...(await loadCheckpoint(d)).tensors.keys()]).toEqual(['a']);
  });
  it('a sharded folder: the index is trusted, a stray model.safetensors beside it is ignored', async () => {
    const d = dir();
    putSharded(d, { 'model-00001-of-00002.safetensors': [A, B], 'model-00002-of-00002.safetensors': [C] });
    put(join(d, 'model.safetensors'), stFile([{ name: 'stray', dtype: 'F32', shape: [1], data: f32(9) }]));
    const ck = await loadCheckpoint(d);
    expect([...ck.tensors.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(ck.index).toBe(join(d, 'model.safetensors.index.json'));
    expect(ck.tensors.get('c')!.file).toBe(join(d, 'model-00002-of-00002.safetensors'));
    expect(ck.bytes).toBe(20);
  });
  it('a shard holding a tensor the index does not list: the tensor is left out', async () => {
    const d = dir();
    putSharded(d, { 's1.safetensors': [A, B] }, { a: 's1.safetensors' });
    const ck = await loadCheckpoint(d);
    expect([...ck.tensors.keys()]).toEqual(['a']);
    expect(ck.bytes).toBe(8);
  });
  it('shards in a sub-folder are allowed', async () => {
    const d = dir();
    put(join(d, 'sub', 's1.safetensors'), stFile([A]));
    put(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'sub/s1.safetensors' } }));
    expect((await loadCheckpoint(d)).tensors.get('a')!.file).toBe(join(d, 'sub', 's1.safetensors'));
  });
  it('the reference fixture (2 shards, F16 + I64)', async () => {
    const ck = await loadCheckpoint('fixtures/runs/digits-cnn-fp16/run/step_000025');
    expect(ck.files.length).toBe(2);
    expect(ck.tensors.get('bn1.num_batches_tracked')!.dtype).toBe('I64');
    expect(ck.tensors.get('conv1.weight')!.dtype).toBe('F16');
  });
});

describe('loadCheckpoint faults: each a clear error naming the file', () => {
  const cases: [string, (d: string) => string, ErrorCode, string | undefined, string?][] = [
    [
      'missing shard',
      (d) => {
        putSharded(d, { 's1.safetensors': [A] }, { a: 's1.safetensors', b: 's2.safetensors' });
        return d;
      },
      'missing-shard',
      'index',
      'b',
    ],
    [
      'shard path with ../',
      (d) => {
        put(join(d, '..', 'outside.safetensors'), stFile([A]));
        putSharded(d, { 's1.safetensors': [B] }, { a: '../outside.safetensors', b: 's1.safetensors' });
        return d;
      },
      'shard-path-escapes',
      'index',
      'a',
    ],
    [
      'shard path absolute',
      (d) => {
        putSharded(d, { 's1.safetensors': [A] }, { a: join(d, 's1.safetensors') });
        return d;
      },
      'shard-path-escapes',
      'index',
      'a',
    ],
    [
      'shard path via a sub-folder and back out',
      (d) => {
        putSharded(d, { 's1.safetensors': [A] }, { a: 'sub/../../x.safetensors' });
        return d;
      },
      'shard-path-escapes',
      'index',
      'a',
    ],
    [
      'shard path is the folder itself',
      (d) => {
        putSharded(d, { 's1.safetensors': [A] }, { a: '.' });
        return d;
      },
      'shard-path-escapes',
      'index',
      'a',
    ],
    [
      'tensor absent from its shard',
      (d) => {
        putSharded(
          d,
          { 's1.safetensors': [A], 's2.safetensors': [B] },
          { a: 's1.safetensors', b: 's2.safetensors', c: 's2.safetensors' },
        );
        return d;
      },
      'tensor-missing-from-shard',
      's2',
      'c',
    ],
    [
      'tensor listed in the wrong shard',
      (d) => {
        putSharded(d, { 's1.safetensors': [A], 's2.safetensors': [B] }, { a: 's2.safetensors', b: 's2.safetensors' });
        return d;
      },
      'tensor-missing-from-shard',
      's2',
      'a',
    ],
    [
      'tensor in two shards',
      (d) => {
        putSharded(
          d,
          { 's1.safetensors': [A, B], 's2.safetensors': [{ ...A }, C] },
          { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' },
        );
        return d;
      },
      'tensor-in-two-shards',
      'index',
      'a',
    ],
    [
      'index not JSON',
      (d) => {
        put(join(d, 'model.safetensors.index.json'), '{"weight_map": ');
        return d;
      },
      'invalid-index',
      'index',
    ],
    [
      'index without weight_map',
      (d) => {
        put(join(d, 'model.safetensors.index.json'), '{"metadata": {}}');
        return d;
      },
      'invalid-index',
      'index',
    ],
    [
      'index null',
      (d) => {
        put(join(d, 'model.safetensors.index.json'), 'null');
        return d;
      },
      'invalid-index',
      'index',
    ],
    [
      'weight_map a list',
      (d) => {
        put(join(d, 'model.safetensors.index.json'), '{"weight_map": ["a"]}');
        return d;
      },
      'invalid-index',
      'index',
    ],
    [
      'weight_map empty',
      (d) => {
        put(join(d, 'model.safetensors.index.json'), '{"weight_map": {}}');
        return d;
      },
      'invalid-index',
      'index',
    ],
    [
      'weight_map value not a string',
      (d) => {
        put(join(d, 'model.safetensors.index.json'), '{"weight_map": {"a": 3}}');
        return d;
      },
      'invalid-index',
      'index',
      'a',
    ],
    [
      'a corrupt shard',
      (d) => {
        putSharded(d, { 's1.safetensors': [A] });
        put(join(d, 's1.safetensors'), stFile([A]).subarray(0, 20));
        return d;
      },
      'invalid-header-length',
      's1',
    ],
    [
      'several .safetensors files and no index',
      (d) => {
        put(join(d, 'a.safetensors'), stFile([A]));
        put(join(d, 'b.safetensors'), stFile([B]));
        return d;
      },
      'invalid-index',
      'dir',
    ],
    [
      'a folder with no .safetensors file',
      (d) => {
        put(join(d, 'readme.txt'), 'x');
        return d;
      },
      'no-checkpoints',
      'dir',
    ],
    ['a path that does not exist', (d) => join(d, 'nope'), 'io', 'nope'],
    ['a corrupt single file', (d) => put(join(d, 'x.safetensors'), new Uint8Array(3)), 'header-too-small', 'x'],
  ];
  it.each(cases)('%s', async (_label, make, code, fileHint, tensor) => {
    const d = dir();
    const p = make(d);
    const e = await failure(p);
    expect(e.code).toBe(code);
    const expectedFile =
      fileHint === 'index'
        ? join(d, 'model.safetensors.index.json')
        : fileHint === 'dir'
          ? d
          : fileHint === 'nope'
            ? join(d, 'nope')
            : fileHint === 'x'
              ? join(d, 'x.safetensors')
              : join(d, `${fileHint}.safetensors`);
    expect(e.file).toBe(expectedFile);
    if (tensor !== undefined) expect(e.tensor).toBe(tensor);
  });

  it('a symlinked shard inside the folder is read (the check is on the name, not the target)', async () => {
    const d = dir();
    const target = put(join(d, 'real', 's1.safetensors'), stFile([A]));
    symlinkSync(target, join(d, 'link.safetensors'));
    put(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'link.safetensors' } }));
    expect([...(await loadCheckpoint(d)).tensors.keys()]).toEqual(['a']);
  });

  it('one-file checkpoints from simpleCkpt load', async () => {
    const p = put(join(dir(), 'model.safetensors'), simpleCkpt([1, 2, 3]));
    expect((await loadCheckpoint(p)).tensors.get('w')!.shape).toEqual([3]);
  });
});
