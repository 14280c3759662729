/** Writer layout and writer -> reader round trips; the written bytes are checked by hand too. */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AvgCkptError } from '../../../src/errors.js';
import { DTYPES, dtypeBits, type DType } from '../../../src/io/dtype.js';
import { readSafetensorsHeader } from '../../../src/io/safetensors/reader.js';
import { layoutSafetensors, SafetensorsWriter, type OutputTensor } from '../../../src/io/safetensors/writer.js';
import { tempDir } from '../../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);
let n = 0;
const fresh = () => join(tmp.dir, `out-${n++}.safetensors`);

/** Parses a file by hand: prefix, JSON header, data. */
function handParse(bytes: Uint8Array) {
  let len = 0;
  for (let i = 7; i >= 0; i--) len = len * 256 + bytes[i];
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + len));
  return {
    len,
    text,
    json: JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>,
    data: bytes.subarray(8 + len),
  };
}

async function writeAll(
  path: string,
  tensors: OutputTensor[],
  metadata: Record<string, string>,
  fill: (name: string, size: number) => Uint8Array,
) {
  const layout = layoutSafetensors(tensors, metadata);
  const w = await SafetensorsWriter.create(path, layout);
  for (const t of layout.tensors) await w.write(fill(t.name, t.end - t.begin));
  await w.close();
  return layout;
}

describe('layoutSafetensors', () => {
  it('orders by descending dtype size then name, pads the header with spaces to a multiple of 8', async () => {
    const tensors: OutputTensor[] = [
      { name: 'b', dtype: 'F16', shape: [3] },
      { name: 'a', dtype: 'F16', shape: [1] },
      { name: 'z', dtype: 'F64', shape: [] },
      { name: 'c', dtype: 'U8', shape: [5] },
      { name: 'e', dtype: 'F32', shape: [0, 2] },
    ];
    const p = fresh();
    const layout = await writeAll(p, tensors, { step: '7' }, (_name, size) => new Uint8Array(size).fill(7));
    expect(layout.tensors.map((t) => t.name)).toEqual(['z', 'e', 'a', 'b', 'c']);
    const bytes = new Uint8Array(readFileSync(p));
    const { len, text, json, data } = handParse(bytes);
    expect(len % 8).toBe(0);
    expect(text.trimEnd().length).toBeGreaterThan(len - 8);
    expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
    expect(json.__metadata__).toEqual({ step: '7' });
    expect(json.z.data_offsets).toEqual([0, 8]);
    expect(json.e.data_offsets).toEqual([8, 8]);
    expect(json.a.data_offsets).toEqual([8, 10]);
    expect(json.b.data_offsets).toEqual([10, 16]);
    expect(json.c.data_offsets).toEqual([16, 21]);
    expect(data.length).toBe(21);
    expect(bytes.length).toBe(layout.fileSize);
  });

  it('no __metadata__ when there is none', () => {
    const l = layoutSafetensors([{ name: 'w', dtype: 'F32', shape: [1] }], {});
    expect(new TextDecoder().decode(l.headerBytes.subarray(8))).not.toContain('__metadata__');
  });

  it('tensor names that are object internals or look like numbers survive into the header', async () => {
    const names = ['__proto__', 'constructor', 'toString', '0', '10', '2'];
    const p = fresh();
    await writeAll(
      p,
      names.map((name) => ({ name, dtype: 'F32' as DType, shape: [1] })),
      { step: '1' },
      (_n, s) => new Uint8Array(s),
    );
    const f = await readSafetensorsHeader(p);
    expect(f.header.tensors.map((t) => t.name).sort()).toEqual([...names].sort());
  });
});

describe('writer -> reader round trip', () => {
  it('random tensors: the reader sees the shapes, dtypes and bytes written', async () => {
    const dtypes = DTYPES.filter((d) => dtypeBits(d) % 8 === 0);
    const tensorArb = fc.record({
      name: fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== '__metadata__'),
      dtype: fc.constantFrom(...dtypes),
      shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(tensorArb, { selector: (t) => t.name, maxLength: 6 }),
        fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
        async (tensors, metadata) => {
          const p = fresh();
          let k = 0;
          const layout = await writeAll(p, tensors, metadata, (_name, size) =>
            Uint8Array.from({ length: size }, () => k++ & 0xff),
          );
          const f = await readSafetensorsHeader(p);
          const bytes = new Uint8Array(readFileSync(p));
          expect(f.fileSize).toBe(bytes.length);
          expect(Object.keys(metadata).length === 0 ? {} : f.header.metadata).toEqual(
            Object.keys(metadata).length === 0 ? {} : metadata,
          );
          const byName = new Map(f.header.tensors.map((t) => [t.name, t]));
          expect(byName.size).toBe(tensors.length);
          let expectByte = 0;
          for (const t of layout.tensors) {
            const r = byName.get(t.name)!;
            expect(r.dtype).toBe(t.dtype);
            expect(r.shape).toEqual(t.shape);
            const size = (t.shape.reduce((a, b) => a * b, 1) * dtypeBits(t.dtype)) / 8;
            expect(r.end - r.begin).toBe(size);
            const start = f.position(r);
            for (let i = 0; i < size; i++) expect(bytes[start + i]).toBe(expectByte++ & 0xff);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('large writes past the coalescing size keep their order', async () => {
    const p = fresh();
    const big = 5 << 20;
    await writeAll(
      p,
      [
        { name: 'a', dtype: 'U8', shape: [10] },
        { name: 'b', dtype: 'U8', shape: [big] },
        { name: 'c', dtype: 'U8', shape: [3] },
      ],
      {},
      (name, size) => new Uint8Array(size).fill(name.charCodeAt(0)),
    );
    const f = await readSafetensorsHeader(p);
    const bytes = readFileSync(p);
    for (const t of f.header.tensors) {
      const s = f.position(t);
      expect(bytes[s]).toBe(t.name.charCodeAt(0));
      expect(bytes[s + (t.end - t.begin) - 1]).toBe(t.name.charCodeAt(0));
    }
  });
});

describe('SafetensorsWriter failures', () => {
  it('refuses to overwrite an existing file (io error naming it)', async () => {
    const p = fresh();
    await writeAll(p, [{ name: 'w', dtype: 'U8', shape: [1] }], {}, () => new Uint8Array(1));
    const err = await SafetensorsWriter.create(p, layoutSafetensors([], {})).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AvgCkptError);
    expect((err as AvgCkptError).code).toBe('io');
    expect((err as AvgCkptError).file).toBe(p);
  });
  it('close() fails when fewer bytes came than planned', async () => {
    const p = fresh();
    const w = await SafetensorsWriter.create(p, layoutSafetensors([{ name: 'w', dtype: 'F32', shape: [4] }], {}));
    await w.write(new Uint8Array(8));
    const err = await w.close().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AvgCkptError);
    expect((err as AvgCkptError).file).toBe(p);
  });
});
