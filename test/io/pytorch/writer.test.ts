/**
 * The .pt writer: what it writes reads back through the torch reader with the same values, tied
 * names sharing one storage record, records 64-byte aligned with correct CRCs (checked here with
 * zlib; `torch.load(path, weights_only=True)` of PyTorch 1.13 loaded the same layout by hand).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { openTorchFile } from '../../../src/io/pytorch/torch-file.js';
import { layoutPt, PtWriter } from '../../../src/io/pytorch/writer.js';
import { bytesReader, readZipDirectory, recordDataStart } from '../../../src/io/zip.js';
import { elementsAt } from '../../helpers/pt-reference.js';
import { tempDir } from '../../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

const TENSORS = [
  { name: 'a', dtype: 'F32' as const, shape: [2, 3] },
  { name: 'tied', dtype: 'F32' as const, shape: [2, 3] },
  { name: 'h', dtype: 'BF16' as const, shape: [4] },
  { name: 'n', dtype: 'I64' as const, shape: [] },
  { name: 'e', dtype: 'F16' as const, shape: [0, 4] },
  { name: 'big', dtype: 'F64' as const, shape: [70000] },
];

async function write(path: string, chunk: number): Promise<void> {
  const w = await PtWriter.create(path, layoutPt(TENSORS, { avg_ckpt: '{"method":"lawa"}' }, new Map([['tied', 'a']])));
  const big = Float64Array.from({ length: 70000 }, (_, i) => i / 4);
  const all = new Uint8Array([
    ...new Uint8Array(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer),
    ...new Uint8Array(Uint16Array.from([0x3f80, 0x4000, 0x4040, 0x4080]).buffer),
    ...new Uint8Array(BigInt64Array.from([42n]).buffer),
    ...new Uint8Array(big.buffer),
  ]);
  for (let o = 0; o < all.byteLength; o += chunk) await w.write(all.subarray(o, o + chunk));
  await w.close();
}

/** name -> CRC-32 from the central directory, walked by hand from the classic end record. */
function centralCrcs(bytes: Uint8Array): Map<string, number> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = bytes.byteLength - 22;
  expect(dv.getUint32(eocd, true)).toBe(0x06054b50);
  const out = new Map<string, number>();
  for (let p = dv.getUint32(eocd + 16, true), n = 0; n < dv.getUint16(eocd + 10, true); n++) {
    const [nameLength, extra, comment] = [
      dv.getUint16(p + 28, true),
      dv.getUint16(p + 30, true),
      dv.getUint16(p + 32, true),
    ];
    out.set(new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLength)), dv.getUint32(p + 16, true));
    p += 46 + nameLength + extra + comment;
  }
  return out;
}

describe('PtWriter', () => {
  for (const chunk of [7, 1 << 20]) {
    it(`writes a torch.save zip that reads back (chunks of ${chunk} bytes)`, async () => {
      const path = join(tmp.dir, `out-${chunk}.pt`);
      await write(path, chunk);
      const bytes = readFileSync(path);
      const r = bytesReader(bytes, path);
      const back = await openTorchFile(r, bytes.subarray(0, 64), path);
      expect([back.layout, back.key]).toEqual(['zip', '']);
      const v = Object.fromEntries(
        back.tensors.map((t) => [t.name, elementsAt(bytes, t.dtype, t.shape, t.position, t.strides)]),
      );
      expect(v).toEqual({
        a: [1, 2, 3, 4, 5, 6],
        tied: [1, 2, 3, 4, 5, 6],
        h: [1, 2, 3, 4],
        n: [42],
        e: [],
        big: Array.from({ length: 70000 }, (_, i) => i / 4),
      });
      const byName = new Map(back.tensors.map((t) => [t.name, t]));
      expect(byName.get('tied')!.storage).toBe(byName.get('a')!.storage);

      const recs = await readZipDirectory(r, path);
      expect(recs.map((x) => x.name)).toEqual([
        'archive/data.pkl',
        'archive/byteorder',
        'archive/data/0',
        'archive/data/1',
        'archive/data/2',
        'archive/data/3',
        'archive/data/4',
        'archive/extra/avg_ckpt.json',
        'archive/version',
      ]);
      const crcs = centralCrcs(bytes);
      for (const rec of recs) {
        const start = await recordDataStart(r, rec, path);
        expect([rec.method, start % 64], rec.name).toEqual([0, 0]);
        expect(crcs.get(rec.name), rec.name).toBe(crc32(bytes.subarray(start, start + rec.size)));
      }
    });
  }

  it('refuses to replace an existing file', async () => {
    const path = join(tmp.dir, 'exists.pt');
    await write(path, 1 << 20);
    await expect(write(path, 1 << 20)).rejects.toMatchObject({ code: 'io' });
  });
});
