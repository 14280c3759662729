/**
 * The .pt writer: what it writes reads back through the torch reader with the same values, tied
 * names sharing one storage record, records 64-byte aligned with correct CRCs (checked here with
 * zlib; `torch.load(path, weights_only=True)` of PyTorch 1.13 loaded the same layout by hand).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { openTorchFile } from '../../../src/io/pytorch/torch-file.js';
import { openReader } from '../../../src/io/storage/storage.js';
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

/**
 * Past 4 GiB: a record larger than 2^32 bytes and a record after it need the ZIP64 sizes and
 * offsets (a 7B model in fp16 is a 14 GB .pt). 4 GiB go through the writer into a sparse file; the file is read back through our reader and, where python3 is installed, by
 * Python's zipfile module, an independent zip implementation.
 */
describe('PtWriter past 4 GiB', () => {
  const HUGE = 2 ** 32 + 100;
  const CHUNK = 64 << 20;
  /** Byte i of the huge tensor: 1 in the first chunk, 2, 3, ... in its last 116 bytes, 0 between. */
  const byteAt = (i: number) => (i < CHUNK ? 1 : i >= 2 ** 32 - 16 ? 2 + ((i - 2 ** 32 + 16) % 250) : 0);

  it('writes ZIP64 sizes and offsets that read back', { timeout: 180_000 }, async () => {
    const path = join(tmp.dir, 'huge.pt');
    const tensors = [
      { name: 'before', dtype: 'F32' as const, shape: [4] },
      { name: 'huge', dtype: 'U8' as const, shape: [HUGE] },
      { name: 'after', dtype: 'F32' as const, shape: [4] },
    ];
    try {
      // the writer over a sink that leaves holes for all-zero chunks (a sparse file) and does
      // not fsync: 4 GiB of real writes took 30-40 s on this VM's disk
      const fh = await open(path, 'wx');
      let end = 0;
      const zeros = new Uint8Array(CHUNK);
      const sink = {
        write: async (b: Uint8Array) => {
          if (b.byteLength > 4096 && Buffer.compare(b, zeros.subarray(0, b.byteLength)) === 0) {
            end += b.byteLength;
            return;
          }
          for (let o = 0; o < b.byteLength; ) o += (await fh.write(b, o, b.byteLength - o, end + o)).bytesWritten;
          end += b.byteLength;
        },
        close: () => fh.close(),
        discard: () => fh.close(),
      };
      const w = await PtWriter.into(sink, layoutPt(tensors, {}), path);
      await w.write(new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer));
      const chunk = new Uint8Array(CHUNK);
      for (let o = 0; o < HUGE; o += CHUNK) {
        const n = Math.min(CHUNK, HUGE - o);
        chunk.fill(o === 0 ? 1 : 0);
        for (let i = Math.max(o, 2 ** 32 - 16); i < o + n; i++) chunk[i - o] = byteAt(i);
        await w.write(chunk.subarray(0, n));
      }
      await w.write(new Uint8Array(Float32Array.from([5, 6, 7, 8]).buffer));
      await w.close();
      expect(statSync(path).size).toBeGreaterThan(HUGE);

      const r = await openReader(path);
      const head = new Uint8Array(64);
      await r.read(0, head);
      const back = await openTorchFile(r, head, path);
      const t = new Map(back.tensors.map((x) => [x.name, x]));
      expect(t.get('huge')!.shape).toEqual([HUGE]);
      const at = async (name: string, offset: number, n: number) => {
        const into = new Uint8Array(n);
        await r.read(t.get(name)!.position + offset, into);
        return into;
      };
      expect(Array.from(new Float32Array((await at('before', 0, 16)).buffer))).toEqual([1, 2, 3, 4]);
      expect(Array.from(new Float32Array((await at('after', 0, 16)).buffer))).toEqual([5, 6, 7, 8]);
      for (const i of [0, CHUNK - 1, CHUNK, 2 ** 31 + 5, 2 ** 32 - 17, 2 ** 32 - 16, 2 ** 32 - 1, 2 ** 32, HUGE - 1])
        expect((await at('huge', i, 1))[0], `byte ${i}`).toBe(byteAt(i));
      expect(t.get('after')!.position).toBeGreaterThan(2 ** 32);
      // the data descriptor after the huge record carries 64-bit sizes
      const d = new DataView((await at('huge', HUGE, 24)).buffer);
      expect([d.getUint32(0, true), d.getBigUint64(8, true), d.getBigUint64(16, true)]).toEqual([
        0x08074b50,
        BigInt(HUGE),
        BigInt(HUGE),
      ]);
      await r.close();

      const py = spawnSync(
        'python3',
        [
          '-c',
          [
            'import sys, zipfile, struct',
            'z = zipfile.ZipFile(sys.argv[1])',
            'info = {i.filename: i for i in z.infolist()}',
            "print(info['archive/data/1'].file_size, info['archive/data/2'].header_offset > 2**32)",
            // a record found through its ZIP64 offset; zipfile checks its CRC-32 (the huge
            // record's CRC is the same streaming code, checked on small files above)
            "print(struct.unpack('<4f', z.read('archive/data/2')))",
            // the huge record's bytes past 4 GiB, from its ZIP64 header offset and its local header
            "h = info['archive/data/1'].header_offset; f = open(sys.argv[1], 'rb'); f.seek(h)",
            "n, m = struct.unpack('<HH', f.read(30)[26:30]); f.seek(h + 30 + n + m + 2**32 - 1)",
            'print(list(f.read(2)))',
          ].join('\n'),
          path,
        ],
        { encoding: 'utf8' },
      );
      if (py.error === undefined) {
        expect(py.stderr).toBe('');
        expect(py.stdout.trim().split('\n')).toEqual([
          `${HUGE} True`,
          '(5.0, 6.0, 7.0, 8.0)',
          `[${byteAt(2 ** 32 - 1)}, ${byteAt(2 ** 32)}]`,
        ]);
      }
    } finally {
      rmSync(path, { force: true });
    }
  });
});
