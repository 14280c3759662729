/**
 * A checkpoint folder that disappears between listing the run and reading it (the trainer's
 * save_total_limit rotating old checkpoints away while the user averages) must give an io
 * error naming it, never a foreign error (which the CLI reports as an internal bug, exit 70).
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { put, simpleCkpt, tempDir } from '../helpers/st-bytes.js';

/** Paths whose readdir fails with ENOENT, as if deleted after the run was listed. */
const vanishing = new Set<string>();
vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs/promises')>();
  const readdir = (async (p: string, ...rest: unknown[]) => {
    if (vanishing.has(String(p))) {
      throw Object.assign(new Error(`ENOENT: no such file or directory, scandir '${String(p)}'`), { code: 'ENOENT' });
    }
    return (orig.readdir as (...a: unknown[]) => unknown)(p, ...rest);
  }) as typeof orig.readdir;
  return { ...orig, readdir, default: { ...orig, readdir } };
});

const { AvgCkptError } = await import('../../src/errors.js');
const { discoverSeries } = await import('../../src/series/discover.js');
const { loadCheckpoint } = await import('../../src/series/checkpoint.js');

const tmp = tempDir();
afterAll(tmp.cleanup);

describe('a checkpoint folder vanishing during discovery', () => {
  it('discoverSeries: io error naming the folder', async () => {
    const run = join(tmp.dir, 'run1');
    put(join(run, 'checkpoint-1', 'model.safetensors'), simpleCkpt([1]));
    put(join(run, 'checkpoint-2', 'notes.txt'), 'x'); // not recognised by name: listed a second time
    vanishing.add(join(run, 'checkpoint-2'));
    const e = await discoverSeries([run]).then(
      () => undefined,
      (x: unknown) => x,
    );
    vanishing.clear();
    expect(e).toBeInstanceOf(AvgCkptError);
    expect((e as InstanceType<typeof AvgCkptError>).code).toBe('io');
    expect((e as InstanceType<typeof AvgCkptError>).file).toBe(join(run, 'checkpoint-2'));
  });
  it('loadCheckpoint: io error naming the folder', async () => {
    const d = join(tmp.dir, 'ck');
    put(join(d, 'model.safetensors'), simpleCkpt([1]));
    vanishing.add(d);
    const e = await loadCheckpoint(d).then(
      () => undefined,
      (x: unknown) => x,
    );
    vanishing.clear();
    expect(e).toBeInstanceOf(AvgCkptError);
    expect((e as InstanceType<typeof AvgCkptError>).code).toBe('io');
    expect((e as InstanceType<typeof AvgCkptError>).file).toBe(d);
  });
});
