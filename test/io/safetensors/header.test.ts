/**
 * One hand-written byte string per safetensors error variant, each producing exactly that code,
 * plus the things the reference reader accepts. Checked both through the pure parser and through
 * `readSafetensorsHeader` on a real file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { AvgCkptError, type ErrorCode } from '../../../src/errors.js';
import { MAX_HEADER_SIZE, parseHeader, parseHeaderSize } from '../../../src/io/safetensors/header.js';
import { readSafetensorsHeader } from '../../../src/io/safetensors/reader.js';
import { concat, f32, put, rawFile, stFile, tempDir, u64le } from '../../helpers/st-bytes.js';

const FILE = 'x.safetensors';

/** What the reader does, on bytes in memory. */
function parseBytes(bytes: Uint8Array) {
  const n = parseHeaderSize(bytes.subarray(0, 8), bytes.length, FILE);
  return parseHeader(bytes.subarray(8, 8 + n), bytes.length, FILE);
}

function codeOf(f: () => unknown): ErrorCode | 'none' | 'other' {
  try {
    f();
    return 'none';
  } catch (e) {
    return e instanceof AvgCkptError ? e.code : 'other';
  }
}

const t = (name: string, dtype: string, shape: string, begin: number, end: number) =>
  `"${name}":{"dtype":"${dtype}","shape":${shape},"data_offsets":[${begin},${end}]}`;

/** [label, bytes, expected code, expected tensor named in the error (if any)] */
const BAD: [string, Uint8Array, ErrorCode, string?][] = [
  ['empty file', new Uint8Array(0), 'header-too-small'],
  ['7 bytes', new Uint8Array(7), 'header-too-small'],
  ['N = limit + 1', rawFile('{}', 0, MAX_HEADER_SIZE + 1), 'header-too-large'],
  ['N = 2^64 - 1', rawFile('{}', 0, (1n << 64n) - 1n), 'header-too-large'],
  ['N = 2^63 (would be negative as i64)', rawFile('{}', 0, 1n << 63n), 'header-too-large'],
  ['N = limit exactly, short file', rawFile('{}', 0, MAX_HEADER_SIZE), 'invalid-header-length'],
  ['N past end of file', rawFile('{}', 0, 3), 'invalid-header-length'],
  ['N = 8, file has only the prefix', u64le(8), 'invalid-header-length'],
  ['header not UTF-8 (0xff)', rawFile(new Uint8Array([0x7b, 0xff, 0x7d])), 'invalid-header'],
  [
    'header with an encoded lone surrogate',
    rawFile(new Uint8Array([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d])),
    'invalid-header',
  ],
  ['header with overlong encoding of "{"', rawFile(new Uint8Array([0xc1, 0xbb, 0x7d])), 'invalid-header'],
  ['header not JSON', rawFile('{"a":'), 'invalid-header-schema'],
  ['header a JSON array', rawFile('[]'), 'invalid-header-schema'],
  ['header JSON null', rawFile('null'), 'invalid-header-schema'],
  ['header JSON string', rawFile('"abc"'), 'invalid-header-schema'],
  ['entry not an object', rawFile('{"w":[1,2]}'), 'invalid-header-schema', 'w'],
  ['unknown dtype', rawFile(`{${t('w', 'F17', '[1]', 0, 4)}}`, 4), 'invalid-header-schema', 'w'],
  ['dtype in lower case', rawFile(`{${t('w', 'f32', '[1]', 0, 4)}}`, 4), 'invalid-header-schema', 'w'],
  ['negative shape', rawFile(`{${t('w', 'F32', '[-1]', 0, 4)}}`, 4), 'invalid-header-schema', 'w'],
  ['non-integer shape', rawFile(`{${t('w', 'F32', '[1.5]', 0, 4)}}`, 4), 'invalid-header-schema', 'w'],
  ['string shape', rawFile(`{${t('w', 'F32', '["1"]', 0, 4)}}`, 4), 'invalid-header-schema', 'w'],
  ['shape not a list', rawFile(`{${t('w', 'F32', '1', 0, 4)}}`, 4), 'invalid-header-schema', 'w'],
  ['missing dtype', rawFile('{"w":{"shape":[1],"data_offsets":[0,4]}}', 4), 'invalid-header-schema', 'w'],
  ['missing shape', rawFile('{"w":{"dtype":"F32","data_offsets":[0,4]}}', 4), 'invalid-header-schema', 'w'],
  ['missing data_offsets', rawFile('{"w":{"dtype":"F32","shape":[1]}}', 4), 'invalid-header-schema', 'w'],
  [
    'three data_offsets',
    rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}', 4),
    'invalid-header-schema',
    'w',
  ],
  [
    'negative offset',
    rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', 4),
    'invalid-header-schema',
    'w',
  ],
  [
    'fractional offset',
    rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}', 4),
    'invalid-header-schema',
    'w',
  ],
  [
    'non-string metadata value',
    rawFile(`{"__metadata__":{"step":1},${t('w', 'F32', '[1]', 0, 4)}}`, 4),
    'invalid-header-schema',
  ],
  [
    'metadata not an object',
    rawFile(`{"__metadata__":"step",${t('w', 'F32', '[1]', 0, 4)}}`, 4),
    'invalid-header-schema',
  ],
  ['metadata a list', rawFile(`{"__metadata__":["a"],${t('w', 'F32', '[1]', 0, 4)}}`, 4), 'invalid-header-schema'],
  ['a tensor named __metadata__', rawFile(`{${t('__metadata__', 'F32', '[1]', 0, 4)}}`, 4), 'invalid-header-schema'],
  ['duplicate key', rawFile(`{${t('w', 'F32', '[1]', 0, 4)},${t('w', 'F32', '[1]', 4, 8)}}`, 8), 'duplicate-key', 'w'],
  [
    'duplicate key spelled with an escape',
    rawFile(`{${t('w', 'F32', '[1]', 0, 4)},${t('\\u0077', 'F32', '[1]', 4, 8)}}`, 8),
    'duplicate-key',
    'w',
  ],
  [
    'duplicate identical entries',
    rawFile(`{${t('w', 'F32', '[1]', 0, 4)},${t('w', 'F32', '[1]', 0, 4)}}`, 4),
    'duplicate-key',
    'w',
  ],
  ['first tensor does not start at 0', rawFile(`{${t('w', 'F32', '[1]', 4, 8)}}`, 8), 'invalid-offset', 'w'],
  [
    'gap between tensors',
    rawFile(`{${t('a', 'F32', '[1]', 0, 4)},${t('b', 'F32', '[1]', 8, 12)}}`, 12),
    'invalid-offset',
    'b',
  ],
  [
    'overlapping tensors',
    rawFile(`{${t('a', 'F32', '[2]', 0, 8)},${t('b', 'F32', '[1]', 4, 8)}}`, 8),
    'invalid-offset',
    'b',
  ],
  ['end before begin', rawFile(`{${t('a', 'F32', '[1]', 0, 4)},${t('b', 'F32', '[0]', 4, 0)}}`, 4), 'invalid-offset'],
  [
    'shape product overflows',
    rawFile(`{${t('w', 'F32', `[${2 ** 26},${2 ** 26},4]`, 0, 0)}}`),
    'validation-overflow',
    'w',
  ],
  [
    'shape x bits overflows',
    rawFile(`{${t('w', 'F64', `[${2 ** 25},${2 ** 25}]`, 0, 0)}}`),
    'validation-overflow',
    'w',
  ],
  ['byte size does not match shape', rawFile(`{${t('w', 'F32', '[2]', 0, 4)}}`, 4), 'tensor-invalid-info', 'w'],
  ['byte size does not match dtype', rawFile(`{${t('w', 'F16', '[2]', 0, 8)}}`, 8), 'tensor-invalid-info', 'w'],
  ['scalar with 8 bytes', rawFile(`{${t('w', 'F32', '[]', 0, 8)}}`, 8), 'tensor-invalid-info', 'w'],
  ['trailing bytes', rawFile(`{${t('w', 'F32', '[1]', 0, 4)}}`, 5), 'metadata-incomplete-buffer'],
  ['truncated data', rawFile(`{${t('w', 'F32', '[2]', 0, 8)}}`, 7), 'metadata-incomplete-buffer'],
  ['data missing entirely', rawFile(`{${t('w', 'F32', '[2]', 0, 8)}}`), 'metadata-incomplete-buffer'],
  ['empty header with trailing data', rawFile('{}', 1), 'metadata-incomplete-buffer'],
];

describe('parseHeader rejects each checklist item with exactly its code', () => {
  it.each(BAD)('%s', (_label, bytes, code, tensor) => {
    let err: unknown;
    try {
      parseBytes(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AvgCkptError);
    const e = err as AvgCkptError;
    expect(e.code).toBe(code);
    expect(e.file).toBe(FILE);
    if (tensor !== undefined) expect(e.tensor).toBe(tensor);
    expect(e.oneLine()).not.toContain('\n');
    expect(e.oneLine().startsWith(FILE)).toBe(true);
  });
});

describe('readSafetensorsHeader gives the same codes on real files', () => {
  const tmp = tempDir();
  afterAll(tmp.cleanup);
  it.each(BAD)('%s', async (label, bytes, code) => {
    const p = put(join(tmp.dir, `${label.replace(/[^a-z0-9]+/gi, '_')}.safetensors`), bytes);
    const err = await readSafetensorsHeader(p).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AvgCkptError);
    expect((err as AvgCkptError).code).toBe(code);
    expect((err as AvgCkptError).file).toBe(p);
  });

  it('a missing file and a folder are io errors naming the path', async () => {
    for (const p of [join(tmp.dir, 'nope.safetensors'), tmp.dir]) {
      const err = await readSafetensorsHeader(p).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AvgCkptError);
      expect((err as AvgCkptError).code).toBe('io');
      expect((err as AvgCkptError).file).toBe(p);
    }
  });
});

describe('validation order follows the reference reader', () => {
  it('size limit before UTF-8', () => {
    expect(codeOf(() => parseBytes(rawFile(new Uint8Array([0xff]), 0, MAX_HEADER_SIZE + 1)))).toBe('header-too-large');
  });
  it('header length before UTF-8', () => {
    expect(codeOf(() => parseBytes(rawFile(new Uint8Array([0xff]), 0, 2)))).toBe('invalid-header-length');
  });
  it('UTF-8 before JSON', () => {
    expect(codeOf(() => parseBytes(rawFile(new Uint8Array([0x5b, 0xff]))))).toBe('invalid-header');
  });
  it('offsets before sizes, sizes before buffer coverage', () => {
    // gap AND a wrong size AND trailing bytes: the gap is reported
    expect(codeOf(() => parseBytes(rawFile(`{${t('w', 'F32', '[3]', 4, 8)}}`, 99)))).toBe('invalid-offset');
    // wrong size AND trailing bytes: the size is reported
    expect(codeOf(() => parseBytes(rawFile(`{${t('w', 'F32', '[3]', 0, 8)}}`, 99)))).toBe('tensor-invalid-info');
  });
});

describe('accepted by the reference reader', () => {
  it('an empty header', () => {
    const h = parseBytes(rawFile('{}'));
    expect(h.tensors).toEqual([]);
    expect(h.dataStart).toBe(10);
  });
  it('empty tensors (a 0 dim, offsets [x, x]) between others', () => {
    const h = parseBytes(
      rawFile(`{${t('a', 'F32', '[1]', 0, 4)},${t('e', 'F32', '[0,3]', 4, 4)},${t('b', 'F16', '[1]', 4, 6)}}`, 6),
    );
    expect(h.tensors.map((x) => [x.name, x.begin, x.end])).toEqual([
      ['a', 0, 4],
      ['e', 4, 4],
      ['b', 4, 6],
    ]);
    expect(h.tensors[1].shape).toEqual([0, 3]);
  });
  it('rank-0 scalars', () => {
    const h = parseBytes(stFile([{ name: 's', dtype: 'F64', shape: [], data: new Uint8Array(8) }]));
    expect(h.tensors[0].shape).toEqual([]);
    expect(h.tensors[0].end).toBe(8);
  });
  it('NaN and Inf values (the header does not look at data)', () => {
    const bytes = stFile([{ name: 'w', dtype: 'F32', shape: [3], data: f32(NaN, Infinity, -Infinity) }]);
    const h = parseBytes(bytes);
    expect(h.tensors[0].end).toBe(12);
  });
  it('whitespace padding around the JSON (spaces, tabs, newlines)', () => {
    for (const pad of ['        ', '\n\t \r', '']) {
      const h = parseBytes(rawFile(`${pad}{${t('w', 'F32', '[1]', 0, 4)}}${pad}`, 4));
      expect(h.headerSize).toBe(`{${t('w', 'F32', '[1]', 0, 4)}}`.length + 2 * pad.length);
      expect(h.dataStart).toBe(8 + h.headerSize);
    }
  });
  it('metadata strings, and metadata null', () => {
    expect(parseBytes(stFile([], { step: '300', note: 'é' })).metadata).toEqual({ step: '300', note: 'é' });
    expect(parseBytes(rawFile(`{"__metadata__":null,${t('w', 'F32', '[1]', 0, 4)}}`, 4)).metadata).toEqual({});
  });
  it('tensors listed out of offset order, every dtype of the list', () => {
    const h = parseBytes(
      rawFile(
        `{${t('b', 'I64', '[1]', 4, 12)},${t('a', 'BF16', '[2]', 0, 4)},${t('c', 'F8_E4M3', '[3]', 12, 15)},${t('d', 'F4', '[2]', 15, 16)}}`,
        16,
      ),
    );
    expect(h.tensors.map((x) => x.dtype)).toEqual(['I64', 'BF16', 'F8_E4M3', 'F4']);
  });
  it('unicode tensor names and names that look like object internals', () => {
    const h = parseBytes(
      rawFile(
        `{${t('__proto__', 'F32', '[1]', 0, 4)},${t('constructor', 'F32', '[1]', 4, 8)},${t('层.权重', 'F32', '[1]', 8, 12)}}`,
        12,
      ),
    );
    expect(h.tensors.map((x) => x.name)).toEqual(['__proto__', 'constructor', '层.权重']);
  });
  it('the header length limit itself is not rejected as too large', () => {
    expect(parseHeaderSize(u64le(MAX_HEADER_SIZE), 8 + MAX_HEADER_SIZE, FILE)).toBe(MAX_HEADER_SIZE);
  });
  it('reads the prefix as little-endian', () => {
    expect(parseHeaderSize(concat(u64le(0x0102), new Uint8Array(0)), 0x0102 + 8, FILE)).toBe(258);
  });
});
