/**
 * Fuzzing the safetensors reader: random bytes and mutated valid files never throw anything but
 * AvgCkptError, never allocate more than the file (and the header limit) allows, and finish in
 * bounded time.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import { AvgCkptError } from '../../../src/errors.js';
import { MAX_HEADER_SIZE, parseHeader, parseHeaderSize } from '../../../src/io/safetensors/header.js';
import { readSafetensorsHeader } from '../../../src/io/safetensors/reader.js';
import { f32, i64, put, rawFile, stFile, tempDir, u16, u64le } from '../../helpers/st-bytes.js';
import { ownError } from '../../helpers/own-errors.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

/** Records the largest typed array the code under test asks for (the reader's header buffer). */
let largestAlloc = 0;
const RealUint8Array = globalThis.Uint8Array;
beforeEach(() => {
  largestAlloc = 0;
  globalThis.Uint8Array = new Proxy(RealUint8Array, {
    construct(target, args, newTarget) {
      if (typeof args[0] === 'number') largestAlloc = Math.max(largestAlloc, args[0]);
      return Reflect.construct(target, args, newTarget);
    },
  });
});
afterEach(() => {
  globalThis.Uint8Array = RealUint8Array;
});

function parseBytes(bytes: Uint8Array) {
  const n = parseHeaderSize(bytes.subarray(0, 8), bytes.length, 'f');
  return parseHeader(bytes.subarray(8, 8 + n), bytes.length, 'f');
}

const VALID: Uint8Array[] = [
  stFile(
    [
      { name: 'a', dtype: 'F32', shape: [2, 2], data: f32(1, 2, 3, 4) },
      { name: 'b', dtype: 'I64', shape: [1], data: i64(5) },
      { name: 'c', dtype: 'F16', shape: [], data: u16(0x3c00) },
      { name: 'e', dtype: 'BF16', shape: [0, 4], data: new Uint8Array(0) },
    ],
    { step: '10', format: 'pt' },
  ),
  stFile([{ name: 'w', dtype: 'F64', shape: [3], data: new Uint8Array(24) }]),
  rawFile('{}'),
];

/** Mutations of a valid file: byte edits, truncation, extension, and header-text edits. */
const mutated = fc.oneof(
  fc
    .record({
      base: fc.constantFrom(...VALID),
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    })
    .map(({ base, edits }) => {
      const b = base.slice();
      for (const [i, v] of edits) b[i % b.length] = v;
      return b;
    }),
  fc
    .record({ base: fc.constantFrom(...VALID), cut: fc.nat() })
    .map(({ base, cut }) => base.subarray(0, cut % (base.length + 1))),
  fc.record({ base: fc.constantFrom(...VALID), extra: fc.uint8Array({ maxLength: 16 }) }).map(({ base, extra }) => {
    const b = new RealUint8Array(base.length + extra.length);
    b.set(base);
    b.set(extra, base.length);
    return b;
  }),
  // header text edits: replace one number or one token with something hostile
  fc
    .record({
      base: fc.constantFrom(...VALID.slice(0, 2)),
      which: fc.nat(),
      by: fc.oneof(
        fc.integer().map(String),
        fc.constantFrom(
          '-1',
          '1e400',
          '9007199254740993',
          '1.5',
          'null',
          '"x"',
          '[]',
          '{}',
          '[0,0,0]',
          '"__metadata__"',
          '"F8_E4M3"',
          '"C64"',
          '"F4"',
          '4294967296',
          '18446744073709551616',
        ),
      ),
    })
    .map(({ base, which, by }) => {
      const n = Number(new DataView(base.buffer, base.byteOffset).getBigUint64(0, true));
      const text = new TextDecoder().decode(base.subarray(8, 8 + n));
      const tokens = [...text.matchAll(/-?\d+|"[^"]*"/g)];
      const m = tokens[which % tokens.length];
      const edited = text.slice(0, m.index) + by + text.slice(m.index! + m[0].length);
      return rawFile(edited, base.subarray(8 + n));
    }),
);

describe('parseHeaderSize / parseHeader fuzz', () => {
  it('random bytes: only AvgCkptError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        ownError(() => parseBytes(b));
      }),
      { numRuns: 2000 },
    );
  });
  it('a random length prefix before random bytes: only AvgCkptError, N never exceeds the file or the limit', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.uint8Array({ maxLength: 64 }), (n, rest) => {
        const b = new RealUint8Array(8 + rest.length);
        b.set(u64le(n));
        b.set(rest, 8);
        let got: number | undefined;
        ownError(() => {
          got = parseHeaderSize(b.subarray(0, 8), b.length, 'f');
        });
        if (got !== undefined) {
          expect(got).toBeLessThanOrEqual(Math.min(MAX_HEADER_SIZE, b.length - 8));
          expect(BigInt(got)).toBe(n);
        }
      }),
      { numRuns: 2000 },
    );
  });
  it('random JSON headers with a plausible prefix: only AvgCkptError', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), fc.nat({ max: 32 }), (json, dataLen) => {
        ownError(() => parseBytes(rawFile(json, dataLen)));
      }),
      { numRuns: 1500 },
    );
  });
  it('random header objects shaped like tensors: only AvgCkptError, and accepted ones cover the buffer exactly', () => {
    const entry = fc.record(
      {
        dtype: fc.oneof(
          fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'U8', 'F4', 'F6_E2M3', 'BOOL', 'f32', ''),
          fc.anything(),
        ),
        shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 3 }), fc.anything()),
        data_offsets: fc.oneof(
          fc.tuple(fc.integer({ min: -1, max: 40 }), fc.integer({ min: -1, max: 40 })),
          fc.anything(),
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 5 }), entry, { maxKeys: 4 }),
        fc.nat({ max: 48 }),
        (obj, dataLen) => {
          const bytes = rawFile(JSON.stringify(obj), dataLen);
          const r = ownError(() => parseBytes(bytes));
          if (r === 'ok') {
            const h = parseBytes(bytes);
            const end = Math.max(0, ...h.tensors.map((t) => t.end));
            expect(h.dataStart + end).toBe(bytes.length);
          }
        },
      ),
      { numRuns: 1500 },
    );
  });
  it('mutated valid files: only AvgCkptError', () => {
    fc.assert(
      fc.property(mutated, (b) => {
        ownError(() => parseBytes(b));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('readSafetensorsHeader fuzz (real files)', () => {
  let k = 0;
  it('mutated and random files: only AvgCkptError, allocation within the file size, bounded time', async () => {
    let slowest = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated, fc.uint8Array({ maxLength: 48 })), async (b) => {
        const p = put(join(tmp.dir, `m${k++ % 50}.safetensors`), b);
        largestAlloc = 0;
        const t0 = performance.now();
        const r = await readSafetensorsHeader(p).then(
          () => 'ok',
          (e: unknown) => {
            if (!(e instanceof AvgCkptError)) throw new Error(`foreign error: ${(e as Error)?.stack ?? String(e)}`);
            return e.code;
          },
        );
        slowest = Math.max(slowest, performance.now() - t0);
        expect(typeof r).toBe('string');
        expect(largestAlloc).toBeLessThanOrEqual(Math.max(8, b.length));
      }),
      { numRuns: 400 },
    );
    expect(slowest).toBeLessThan(1000);
  });

  it('(control) the allocation probe sees the header buffer of a valid file', async () => {
    const p = put(join(tmp.dir, 'valid.safetensors'), VALID[0]);
    largestAlloc = 0;
    const f = await readSafetensorsHeader(p);
    expect(largestAlloc).toBeGreaterThanOrEqual(f.header.headerSize);
  });

  it('a header claiming 100 MB in a 24-byte file fails before allocating it', async () => {
    const p = put(join(tmp.dir, 'claims-100mb.safetensors'), rawFile('{"a":1}        ', 0, MAX_HEADER_SIZE));
    largestAlloc = 0;
    const e = await readSafetensorsHeader(p).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as AvgCkptError).code).toBe('invalid-header-length');
    expect(largestAlloc).toBeLessThan(1024);
  });

  it('a header claiming 2^64 - 1 bytes fails before allocating it', async () => {
    const p = put(join(tmp.dir, 'claims-huge.safetensors'), rawFile('{}', 0, (1n << 64n) - 1n));
    largestAlloc = 0;
    const e = await readSafetensorsHeader(p).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((e as AvgCkptError).code).toBe('header-too-large');
    expect(largestAlloc).toBeLessThan(1024);
  });
});

describe('hostile headers finish quickly', () => {
  it('JSON nested 1,000,000 deep: a schema error, not a stack overflow', () => {
    const deep = `{"a":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`;
    const t0 = performance.now();
    expect(ownError(() => parseBytes(rawFile(deep)))).toBe('invalid-header-schema');
    expect(performance.now() - t0).toBeLessThan(5000);
  });
  it('50,000 tensors in one header: validated in linear-ish time (a quadratic check would take minutes)', () => {
    const parts: string[] = [];
    for (let i = 0; i < 50_000; i++) parts.push(`"t${i}":{"dtype":"U8","shape":[1],"data_offsets":[${i},${i + 1}]}`);
    const t0 = performance.now();
    const h = parseBytes(rawFile(`{${parts.join(',')}}`, 50_000));
    expect(h.tensors.length).toBe(50_000);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });
  it('a 1,000,000-character key with escapes', () => {
    const key = '\\"'.repeat(500_000);
    expect(
      ownError(() => parseBytes(rawFile(`{"${key}":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"${key}":1}`, 1))),
    ).toBe('duplicate-key');
  });
});
