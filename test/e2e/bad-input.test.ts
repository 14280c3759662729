/**
 * ISSUE 6 part 1, end to end: every bad input gives exit 1 and one line on stderr naming the
 * file (and tensor), writes nothing, and leaves the inputs byte-for-byte as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, listAll, runCli, snapshot } from '../helpers/cli.js';
import { f32, i64, put, putSharded, rawFile, stFile, tempDir, type HandTensor } from '../helpers/st-bytes.js';

const tmp = tempDir('avg-ckpt-e2e-bad-');
beforeAll(ensureBuilt);
afterAll(tmp.cleanup);
let n = 0;

const good = (k: number, withEmpty = false): HandTensor[] => [
  { name: 'w', dtype: 'F32', shape: [2, 2], data: f32(k, k + 1, k + 2, k + 3) },
  { name: 's', dtype: 'F32', shape: [], data: f32(k * k) },
  ...(withEmpty ? [{ name: 'e', dtype: 'F32', shape: [0, 3], data: new Uint8Array(0) }] : []),
  { name: 'n', dtype: 'I64', shape: [1], data: i64(100 + k) },
];

/** A run with checkpoint-10 and -20 good and checkpoint-30 made by `bad` (a file or a folder). */
function runWith(bad: (dir: string) => void, withEmpty = false): { run: string; out: string } {
  const base = join(tmp.dir, `case${n++}`);
  const run = join(base, 'run');
  for (const k of [10, 20]) put(join(run, `checkpoint-${k}`, 'model.safetensors'), stFile(good(k, withEmpty)));
  const d = join(run, 'checkpoint-30');
  mkdirSync(d, { recursive: true });
  bad(d);
  const out = join(base, 'out');
  mkdirSync(out);
  return { run, out };
}

/** Runs the merge into a file output (and, with `asFolder`, a folder output too) and checks the refusal. */
async function expectRejected(run: string, out: string, fileInMessage: string, tensor?: string, asFolder = false) {
  const before = snapshot(run);
  const targets = [join(out, 'avg.safetensors'), ...(asFolder ? [`${join(out, 'avg')}/`] : [])];
  for (const target of targets) {
    const extra = target.endsWith('/') ? ['--shard-size', '16'] : [];
    const r = await runCli(['merge', run, '--method', 'uniform', '-o', target, ...extra]);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0].startsWith('avg-ckpt: ')).toBe(true);
    expect(lines[0]).toContain(fileInMessage);
    if (tensor !== undefined) expect(lines[0]).toContain(`"${tensor}"`);
    expect(r.stdout).toBe('');
    expect(listAll(out)).toEqual([]); // no output, no temporary file
  }
  expect(snapshot(run)).toEqual(before);
}

const t = (name: string, dtype: string, shape: string, begin: number, end: number) =>
  `"${name}":{"dtype":"${dtype}","shape":${shape},"data_offsets":[${begin},${end}]}`;

/** The safetensors checklist, one corrupt model.safetensors per item. */
const CHECKLIST: [string, Uint8Array, string?][] = [
  ['header-too-small: 5-byte file', new Uint8Array(5)],
  ['header-too-large: N over 100 MB', rawFile('{}', 0, 100_000_001)],
  ['invalid-header-length: N past the end', rawFile('{}', 0, 4096)],
  ['invalid-header: not UTF-8', rawFile(new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]))],
  ['invalid-header-schema: not JSON', rawFile('{"w": ')],
  ['invalid-header-schema: unknown dtype', rawFile(`{${t('w', 'F31', '[1]', 0, 4)}}`, 4), 'w'],
  ['invalid-header-schema: negative shape', rawFile(`{${t('w', 'F32', '[-4]', 0, 4)}}`, 4), 'w'],
  ['invalid-header-schema: missing data_offsets', rawFile('{"w":{"dtype":"F32","shape":[1]}}', 4), 'w'],
  [
    'invalid-header-schema: non-string metadata',
    rawFile(`{"__metadata__":{"step":30},${t('w', 'F32', '[1]', 0, 4)}}`, 4),
  ],
  ['invalid-header-schema: a tensor named __metadata__', rawFile(`{${t('__metadata__', 'F32', '[1]', 0, 4)}}`, 4)],
  ['duplicate-key', rawFile(`{${t('w', 'F32', '[1]', 0, 4)},${t('w', 'F32', '[1]', 4, 8)}}`, 8), 'w'],
  ['invalid-offset: gap', rawFile(`{${t('w', 'F32', '[1]', 0, 4)},${t('s', 'F32', '[]', 8, 12)}}`, 12), 's'],
  ['invalid-offset: overlap', rawFile(`{${t('w', 'F32', '[2]', 0, 8)},${t('s', 'F32', '[]', 4, 8)}}`, 8), 's'],
  ['validation-overflow', rawFile(`{${t('w', 'F64', `[${2 ** 30},${2 ** 30}]`, 0, 0)}}`), 'w'],
  ['tensor-invalid-info', rawFile(`{${t('w', 'F32', '[2,2]', 0, 12)}}`, 12), 'w'],
  ['metadata-incomplete-buffer: trailing bytes', concatGood(30, 3)],
  ['metadata-incomplete-buffer: truncated', stFile(good(30)).subarray(0, stFile(good(30)).length - 3)],
];

function concatGood(k: number, extra: number): Uint8Array {
  const g = stFile(good(k));
  const b = new Uint8Array(g.length + extra);
  b.set(g);
  return b;
}

describe('safetensors checklist: exit 1, one line naming the file, nothing written, inputs unchanged', () => {
  it.each(CHECKLIST)('%s', async (_label, bytes, tensor) => {
    const { run, out } = runWith((d) => put(join(d, 'model.safetensors'), bytes));
    await expectRejected(run, out, join(run, 'checkpoint-30', 'model.safetensors'), tensor);
  });
});

describe('sharded-index faults', () => {
  const shards = (d: string, map?: Record<string, string>) => {
    const g = good(30, true);
    putSharded(
      d,
      { 'model-00001-of-00002.safetensors': g.slice(0, 2), 'model-00002-of-00002.safetensors': g.slice(2) },
      map,
    );
  };
  const A = 'model-00001-of-00002.safetensors';
  const B = 'model-00002-of-00002.safetensors';
  it('missing shard', async () => {
    const { run, out } = runWith((d) => shards(d, { w: A, s: A, e: B, n: 'model-00003-of-00003.safetensors' }), true);
    await expectRejected(run, out, join(run, 'checkpoint-30', 'model.safetensors.index.json'), 'n', true);
  });
  it('shard path leaving the folder', async () => {
    const { run, out } = runWith((d) => shards(d, { w: A, s: A, e: B, n: `../checkpoint-20/model.safetensors` }), true);
    await expectRejected(run, out, join(run, 'checkpoint-30', 'model.safetensors.index.json'), 'n');
  });
  it('tensor absent from its shard', async () => {
    const { run, out } = runWith((d) => shards(d, { w: A, s: B, e: B, n: B }), true);
    await expectRejected(run, out, join(run, 'checkpoint-30', B), 's');
  });
  it('tensor in two shards', async () => {
    const { run, out } = runWith((d) => {
      const g = good(30, true);
      putSharded(d, { [A]: g.slice(0, 2), [B]: [g[0], ...g.slice(2)] }, { w: A, s: A, e: B, n: B });
    }, true);
    await expectRejected(run, out, join(run, 'checkpoint-30', 'model.safetensors.index.json'), 'w');
  });
  it('index that is not JSON', async () => {
    const { run, out } = runWith((d) => {
      shards(d);
      put(join(d, 'model.safetensors.index.json'), '{"weight_map": {');
    }, true);
    await expectRejected(run, out, join(run, 'checkpoint-30', 'model.safetensors.index.json'));
  });
});

describe('mismatched series', () => {
  it('missing key', async () => {
    const { run, out } = runWith((d) =>
      put(join(d, 'model.safetensors'), stFile(good(30).filter((x) => x.name !== 's'))),
    );
    // the newest (checkpoint-30) is the reference: the older ones hold a tensor it lacks
    await expectRejected(run, out, join(run, 'checkpoint-10', 'model.safetensors'), 's');
  });
  it('extra key in the newest', async () => {
    const { run, out } = runWith((d) =>
      put(join(d, 'model.safetensors'), stFile([...good(30), { name: 'x', dtype: 'F32', shape: [1], data: f32(1) }])),
    );
    await expectRejected(run, out, join(run, 'checkpoint-10'), 'x');
  });
  it('different shape', async () => {
    const { run, out } = runWith((d) =>
      put(
        join(d, 'model.safetensors'),
        stFile([{ name: 'w', dtype: 'F32', shape: [4], data: f32(1, 2, 3, 4) }, ...good(30).slice(1)]),
      ),
    );
    await expectRejected(run, out, join(run, 'checkpoint-10', 'model.safetensors'), 'w');
  });
  it('different dtype', async () => {
    const { run, out } = runWith((d) =>
      put(
        join(d, 'model.safetensors'),
        stFile([{ name: 'w', dtype: 'F64', shape: [2, 2], data: new Uint8Array(32) }, ...good(30).slice(1)]),
      ),
    );
    await expectRejected(run, out, join(run, 'checkpoint-10', 'model.safetensors'), 'w');
  });
});

describe('non-finite values', () => {
  for (const [label, bad] of [
    ['NaN', NaN],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
  ] as const) {
    it(`${label} in an input: refused, naming the file and tensor`, async () => {
      const { run, out } = runWith((d) => {
        const g = good(30);
        g[0] = { ...g[0], data: f32(1, bad, 3, 4) };
        put(join(d, 'model.safetensors'), stFile(g));
      });
      await expectRejected(run, out, join(run, 'checkpoint-30', 'model.safetensors'), 'w', label === 'NaN');
    });
  }
  it('--allow-nonfinite averages it: the output holds NaN where the input did', async () => {
    const { run, out } = runWith((d) => {
      const g = good(30);
      g[0] = { ...g[0], data: f32(1, NaN, 3, 4) };
      put(join(d, 'model.safetensors'), stFile(g));
    });
    const o = join(out, 'avg.safetensors');
    const r = await runCli(['merge', run, '--method', 'uniform', '-o', o, '--allow-nonfinite', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const w = readTensor(readFileSync(o), 'w');
    expect(w[0]).toBeCloseTo((10 + 20 + 1) / 3, 5);
    expect(w[1]).toBeNaN();
  });
});

/** Reads an F32 tensor from a safetensors file by hand. */
function readTensor(buf: Buffer, name: string): number[] {
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8'));
  const [b, e] = header[name].data_offsets as [number, number];
  const out: number[] = [];
  for (let i = 8 + len + b; i < 8 + len + e; i += 4) out.push(buf.readFloatLE(i));
  return out;
}

describe('empty tensors and scalars are valid input', () => {
  it('scalars: averaged; integers: copied from the newest', async () => {
    const { run, out } = runWith((d) => put(join(d, 'model.safetensors'), stFile(good(30))));
    const o = join(out, 'avg.safetensors');
    const r = await runCli(['merge', run, '--method', 'lawa', '--k', '2', '-o', o, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const buf = readFileSync(o);
    expect(readTensor(buf, 's')).toEqual([Math.fround((400 + 900) / 2)]);
    expect(readTensor(buf, 'w')).toEqual([25, 26, 27, 28]);
  });

  // Regression (fixed in dbfb588): a zero-element float tensor queued read jobs that the
  // accumulator never took, so every later tensor got the previous tensor's bytes.
  it('merge keeps the empty tensor, averages the scalar, copies the integer from the newest', async () => {
    const { run, out } = runWith((d) => put(join(d, 'model.safetensors'), stFile(good(30, true))), true);
    const before = snapshot(run);
    const o = join(out, 'avg.safetensors');
    const r = await runCli(['merge', run, '--method', 'uniform', '-o', o, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const buf = readFileSync(o);
    const len = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8'));
    expect(header.e.shape).toEqual([0, 3]);
    expect(header.e.data_offsets[0]).toBe(header.e.data_offsets[1]);
    expect(header.s.shape).toEqual([]);
    expect(readTensor(buf, 's')).toEqual([Math.fround((100 + 400 + 900) / 3)]);
    expect(readTensor(buf, 'w')).toEqual([20, 21, 22, 23]);
    const [nb] = header.n.data_offsets as [number];
    expect(buf.readBigInt64LE(8 + len + nb)).toBe(130n);
    expect(snapshot(run)).toEqual(before);
  });
});

describe('output refusals leave everything as it was', () => {
  it('an existing output without --force', async () => {
    const { run, out } = runWith((d) => put(join(d, 'model.safetensors'), stFile(good(30))));
    const o = put(join(out, 'avg.safetensors'), 'precious');
    const r = await runCli(['merge', run, '-o', o]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(o);
    expect(readFileSync(o, 'utf8')).toBe('precious');
    expect(listAll(out)).toEqual(['avg.safetensors']);
  });
  it('an output that is one of the inputs, even with --force', async () => {
    const { run } = runWith((d) => put(join(d, 'model.safetensors'), stFile(good(30))));
    const before = snapshot(run);
    for (const o of [join(run, 'checkpoint-20', 'model.safetensors'), `${join(run, 'checkpoint-20')}/`, `${run}/`]) {
      const r = await runCli(['merge', run, '-o', o, '--force']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(snapshot(run)).toEqual(before);
    }
    expect(existsSync(join(run, '.avg'))).toBe(false);
  });
});

describe('an average that overflows the output dtype', () => {
  // Regression (fixed in 6b8425e): the non-finite check ran on the float64 average before
  // encoding, so finite inputs whose average exceeds F16's range were written as +Inf, exit 0.
  it('--dtype f16 with finite F32 inputs averaging to 1e5: refused, naming the tensor, nothing written', async () => {
    const base = join(tmp.dir, `case${n++}`);
    const run = join(base, 'run');
    for (const k of [1, 2])
      put(
        join(run, `ckpt_step_${k}.safetensors`),
        stFile([{ name: 'w', dtype: 'F32', shape: [2], data: f32(1, 1e5) }]),
      );
    const out = join(base, 'out');
    mkdirSync(out);
    const before = snapshot(run);
    const r = await runCli(['merge', run, '--dtype', 'f16', '-o', join(out, 'avg.safetensors')]);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"w"');
    expect(lines[0]).not.toContain('.tmp-'); // name what the user knows, not the temporary file
    expect(listAll(out)).toEqual([]);
    expect(snapshot(run)).toEqual(before);
  });
});

describe('usage errors', () => {
  it.each([
    ['an unknown method', ['--method', 'nope']],
    ['an unknown option', ['--frobnicate']],
    ['no output and no --dry-run', []],
  ])('%s: exit 2, an avg-ckpt line and a pointer to --help, nothing written', async (_l, extra) => {
    const { run, out } = runWith((d) => put(join(d, 'model.safetensors'), stFile(good(30))));
    const before = snapshot(run);
    const args = ['merge', run, ...extra, ...(extra.length > 0 ? ['-o', join(out, 'avg.safetensors')] : [])];
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    expect(lines[0].startsWith('avg-ckpt: ')).toBe(true);
    expect(lines[lines.length - 1]).toBe('Run avg-ckpt --help for usage.');
    expect(listAll(out)).toEqual([]);
    expect(snapshot(run)).toEqual(before);
  });
});

describe('special files where a checkpoint file is expected', () => {
  // Opening a FIFO for reading blocks until a writer appears, and a thread blocked in open() keeps
  // the process alive even after SIGTERM: a pipe must be refused before it is opened. The
  // timeout kills the child, so a regression fails here instead of hanging.
  const fifo = (p: string) => {
    mkdirSync(join(p, '..'), { recursive: true });
    execFileSync('mkfifo', [p]);
    return p;
  };
  it.each([
    ['model.safetensors is a FIFO', (d: string) => fifo(join(d, 'model.safetensors')), 'model.safetensors'],
    [
      'the index is a FIFO',
      (d: string) => fifo(join(d, 'model.safetensors.index.json')),
      'model.safetensors.index.json',
    ],
    [
      'a shard is a FIFO',
      (d: string) => {
        put(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: 'a.safetensors' } }));
        fifo(join(d, 'a.safetensors'));
      },
      'a.safetensors',
    ],
  ] as const)('%s: exit 1 naming it, promptly', async (_l, make, name) => {
    const { run, out } = runWith(make);
    const r = await runCli(['merge', run, '-o', join(out, 'avg.safetensors')], { timeoutMs: 15_000 });
    expect(r.signal, 'the process hung on the FIFO').toBeNull();
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(join(run, 'checkpoint-30', name));
    expect(listAll(out)).toEqual([]);
  });
  it('a FIFO named trainer_state.json is skipped, not read', async () => {
    const base = join(tmp.dir, `case${n++}`);
    for (const k of [1, 2]) put(join(base, 'run', `final${k === 1 ? '' : '-b'}`, 'model.safetensors'), stFile(good(k)));
    fifo(join(base, 'run', 'final', 'trainer_state.json'));
    const r = await runCli(['merge', join(base, 'run'), '--dry-run'], { timeoutMs: 15_000 });
    expect(r.signal, 'the process hung on the FIFO').toBeNull();
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('output folders created for the output', () => {
  // Regression: folders created for the output stayed behind, empty, after a later failure;
  // AtomicOutput now removes the folders it created when the output is abandoned.
  it('a failure after the output folders were created removes them again', async () => {
    const { run, out } = runWith((d) => {
      const g = good(30);
      g[0] = { ...g[0], data: f32(1, NaN, 3, 4) };
      put(join(d, 'model.safetensors'), stFile(g));
    });
    const r = await runCli(['merge', run, '-o', join(out, 'new', 'sub', 'avg.safetensors')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('NaN');
    expect(listAll(out)).toEqual([]);
  });
});
