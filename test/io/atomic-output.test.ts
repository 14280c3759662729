/** AtomicOutput: temporary name beside the target, rename into place, cleanup on failure. */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AvgCkptError } from '../../src/errors.js';
import { AtomicOutput, removeTemporaryOutputs } from '../../src/io/atomic-output.js';
import { tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);
let n = 0;
const fresh = () => {
  const d = join(tmp.dir, `d${n++}`);
  mkdirSync(d);
  return d;
};

describe('file outputs', () => {
  it('writes under a hidden temporary name in the same folder, then renames', async () => {
    const d = fresh();
    const out = await AtomicOutput.begin(join(d, 'a.safetensors'), 'file', false);
    expect(out.tempPath.startsWith(join(d, '.a.safetensors.tmp-'))).toBe(true);
    writeFileSync(out.tempPath, 'new');
    expect(existsSync(join(d, 'a.safetensors'))).toBe(false);
    await out.commit();
    expect(readdirSync(d)).toEqual(['a.safetensors']);
    expect(readFileSync(join(d, 'a.safetensors'), 'utf8')).toBe('new');
  });
  it('refuses an existing target without force; replaces it with force', async () => {
    const d = fresh();
    const target = join(d, 'a.safetensors');
    writeFileSync(target, 'old');
    const e = await AtomicOutput.begin(target, 'file', false).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as AvgCkptError).code).toBe('output-exists');
    const out = await AtomicOutput.begin(target, 'file', true);
    writeFileSync(out.tempPath, 'new');
    expect(readFileSync(target, 'utf8')).toBe('old');
    await out.commit();
    expect(readFileSync(target, 'utf8')).toBe('new');
  });
  it('a target that appears while writing is not replaced without force', async () => {
    const d = fresh();
    const target = join(d, 'a.safetensors');
    const out = await AtomicOutput.begin(target, 'file', false);
    writeFileSync(out.tempPath, 'new');
    writeFileSync(target, 'someone else');
    const e = await out.commit().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as AvgCkptError).code).toBe('output-exists');
    await out.abort();
    expect(readFileSync(target, 'utf8')).toBe('someone else');
    expect(readdirSync(d)).toEqual(['a.safetensors']);
  });
  it('abort and removeTemporaryOutputs remove the temporary file', async () => {
    const d = fresh();
    const a = await AtomicOutput.begin(join(d, 'a.safetensors'), 'file', false);
    writeFileSync(a.tempPath, 'x');
    await a.abort();
    const b = await AtomicOutput.begin(join(d, 'b.safetensors'), 'file', false);
    writeFileSync(b.tempPath, 'x');
    removeTemporaryOutputs();
    expect(readdirSync(d)).toEqual([]);
  });
  it('creates missing parent folders', async () => {
    const d = fresh();
    const out = await AtomicOutput.begin(join(d, 'x', 'y', 'a.safetensors'), 'file', false);
    writeFileSync(out.tempPath, 'z');
    await out.commit();
    expect(readFileSync(join(d, 'x', 'y', 'a.safetensors'), 'utf8')).toBe('z');
  });
});

describe('folder outputs', () => {
  it('replaces an existing folder with force', async () => {
    const d = fresh();
    const target = join(d, 'avg');
    mkdirSync(target);
    writeFileSync(join(target, 'old.txt'), 'old');
    const out = await AtomicOutput.begin(target, 'dir', true);
    writeFileSync(join(out.tempPath, 'model.safetensors'), 'new');
    await out.commit();
    expect(readdirSync(target)).toEqual(['model.safetensors']);
    expect(readdirSync(d)).toEqual(['avg']);
  });

  // Regression (fixed in 55f2dcb): the old folder, moved aside to `<temp>.old` before the new one
  // was moved in, was deleted by the cleanup when the second rename failed (or a signal landed
  // between the renames): the user's previous output was lost.
  it('if moving the new folder in fails, the old folder is still at the target after cleanup', async () => {
    const d = fresh();
    const target = join(d, 'avg');
    mkdirSync(target);
    writeFileSync(join(target, 'model.safetensors'), 'previous output');
    const out = await AtomicOutput.begin(target, 'dir', true);
    rmSync(out.tempPath, { recursive: true }); // the second rename will fail with ENOENT
    const e = await out.commit().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(AvgCkptError);
    await out.abort();
    removeTemporaryOutputs(); // what the CLI does on every error
    expect(existsSync(join(target, 'model.safetensors'))).toBe(true);
    expect(readFileSync(join(target, 'model.safetensors'), 'utf8')).toBe('previous output');
  });
});
