/** The zip reader shared by the torch and .npz readers, on archives built by hand (npy-bytes.ts). */
import { describe, expect, it } from 'vitest';
import { bytesReader, readRecord, readZipDirectory, recordDataStart } from '../../src/io/zip.js';
import { zipBytes } from '../helpers/npy-bytes.js';

const enc = new TextEncoder();
const entries = [
  { name: 'any-root/data.pkl', data: enc.encode('pickle bytes') },
  { name: 'any-root/data/0', data: Uint8Array.from({ length: 300 }, (_, i) => i & 0xff) },
  { name: 'any-root/notes.txt', data: enc.encode('x'.repeat(1000)), deflate: true },
];

describe('zip reader', () => {
  for (const zip64 of [false, true]) {
    it(`lists records and reads them by range (${zip64 ? 'ZIP64 fields' : 'classic'})`, async () => {
      const bytes = zipBytes(entries, { zip64 });
      const r = bytesReader(bytes, 'a.zip');
      const recs = await readZipDirectory(r, 'a.zip');
      expect(recs.map((x) => [x.name, x.method, x.size])).toEqual([
        ['any-root/data.pkl', 0, 12],
        ['any-root/data/0', 0, 300],
        ['any-root/notes.txt', 8, 1000],
      ]);
      const start = await recordDataStart(r, recs[1], 'a.zip');
      expect([...bytes.subarray(start, start + 300)]).toEqual([...entries[1].data]);
      expect(new TextDecoder().decode(await readRecord(r, recs[2], 'a.zip'))).toBe('x'.repeat(1000));
    });
  }

  it('refuses what is not a zip, and records that point past the end, as invalid-zip', async () => {
    await expect(
      readZipDirectory(bytesReader(enc.encode('not a zip at all, just text'), 'n.zip'), 'n.zip'),
    ).rejects.toMatchObject({ code: 'invalid-zip' });
    const bytes = zipBytes(entries);
    const cut = bytes.slice(0, 40).length; // the first record's data is cut off, the directory kept
    const broken = new Uint8Array([...bytes.subarray(0, cut), ...bytes.subarray(bytes.length - 200)]);
    await expect(
      readZipDirectory(bytesReader(broken, 'b.zip'), 'b.zip').then((recs) =>
        readRecord(bytesReader(broken, 'b.zip'), recs[0], 'b.zip'),
      ),
    ).rejects.toMatchObject({ code: 'invalid-zip' });
  });
});
