/** .npy and .npz against files NumPy 2.4 wrote (test/io/npy-testdata, made with np.save/np.savez). */
import { describe, expect, it } from 'vitest';
import { parseNpy, readNpy, readNpz } from '../../src/io/npy.js';
import { AvgCkptError } from '../../src/errors.js';

const dir = 'test/io/npy-testdata';
const grid = Array.from({ length: 12 }, (_, i) => i / 8);

describe('npy', () => {
  it('reads float32, int64, float16 and bool arrays NumPy saved', async () => {
    const a = await readNpy(`${dir}/f32_3x4.npy`);
    expect(a).toMatchObject({ dtype: 'float32', shape: [3, 4] });
    expect([...a.data]).toEqual(grid);
    expect([...(await readNpy(`${dir}/i64.npy`)).data]).toEqual([3n, -1n, -100n, 7n]);
    const h = await readNpy(`${dir}/f16.npy`);
    expect(h.dtype).toBe('float16');
    expect([...h.data]).toEqual([0x3800, 0xc000, 0x7bff]); // 0.5, -2, 65504 as IEEE half bits
    expect([...(await readNpy(`${dir}/bool.npy`)).data]).toEqual([1, 0, 1]);
  });

  it('refuses Fortran order, big-endian data, bad magic and truncation with invalid-npy', async () => {
    await expect(readNpy(`${dir}/fortran.npy`)).rejects.toMatchObject({
      code: 'invalid-npy',
      message: expect.stringMatching(/Fortran/),
    });
    await expect(readNpy(`${dir}/big_endian.npy`)).rejects.toMatchObject({
      code: 'invalid-npy',
      message: expect.stringMatching(/'>f4'/),
    });
    expect(() => parseNpy(new Uint8Array(20), 'x.npy')).toThrow(AvgCkptError);
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
    const bytes = new Uint8Array([
      0x93,
      ...new TextEncoder().encode('NUMPY'),
      1,
      0,
      header.length,
      0,
      ...new TextEncoder().encode(header),
      0,
      0,
      0,
      0,
    ]);
    expect(() => parseNpy(bytes, 'short.npy')).toThrow(/needs 16/);
  });
});

describe('npz', () => {
  it.each(['stored.npz', 'deflated.npz'])('reads every array of %s by name', async (f) => {
    const m = await readNpz(`${dir}/${f}`);
    expect([...m.keys()].sort()).toEqual(['input', 'labels']);
    expect(m.get('input')!.shape).toEqual([3, 4]);
    expect([...m.get('input')!.data]).toEqual(grid);
    expect([...m.get('labels')!.data]).toEqual([1n, 2n, 3n]);
  });

  it('refuses a file that is not a zip', async () => {
    await expect(readNpz(`${dir}/f32_3x4.npy`)).rejects.toMatchObject({ code: 'invalid-npy' });
  });
});
