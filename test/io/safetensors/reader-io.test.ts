/** Read errors while reading a header (EIO from a failing disk) are io errors naming the file. */
import { afterAll, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { put, simpleCkpt, tempDir } from '../../helpers/st-bytes.js';

const failing = new Set<string>();
vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs/promises')>();
  const open = (async (p: string, ...rest: unknown[]) => {
    const fh = await (orig.open as (...a: unknown[]) => Promise<import('node:fs/promises').FileHandle>)(p, ...rest);
    if (!failing.has(String(p))) return fh;
    return new Proxy(fh, {
      get(target, key) {
        if (key === 'read')
          return async () => {
            throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
          };
        const v = Reflect.get(target, key);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }) as typeof orig.open;
  return { ...orig, open, default: { ...orig, open } };
});

const { AvgCkptError } = await import('../../../src/errors.js');
const { readSafetensorsHeader } = await import('../../../src/io/safetensors/reader.js');

const tmp = tempDir();
afterAll(tmp.cleanup);

it('EIO while reading the header: io error naming the file, not a foreign error', async () => {
  const p = put(join(tmp.dir, 'x.safetensors'), simpleCkpt([1, 2]));
  failing.add(p);
  const e = await readSafetensorsHeader(p).then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AvgCkptError);
  expect((e as InstanceType<typeof AvgCkptError>).code).toBe('io');
  expect((e as InstanceType<typeof AvgCkptError>).file).toBe(p);
  expect((e as Error).message).toContain('EIO');
});
