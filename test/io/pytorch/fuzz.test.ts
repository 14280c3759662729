/**
 * Fuzzing the zip and pickle readers: random bytes and mutated real torch files (zip and legacy,
 * several protocols) never throw anything but AvgCkptError, and finish quickly (the limits on
 * pickle size, memo, stack and strings bound the work).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PickleTruncated, runPickle } from '../../../src/io/pytorch/pickle.js';
import { openTorchFile } from '../../../src/io/pytorch/torch-file.js';
import { torchHooks } from '../../../src/io/pytorch/torch-pickle.js';
import { bytesReader, readRecord, readZipDirectory } from '../../../src/io/zip.js';
import { PT } from '../../helpers/pt-reference.js';
import { ownError, ownErrorAsync } from '../../helpers/own-errors.js';

const VALID = [
  `${PT}/views/run/step_000100.pt`,
  `${PT}/legacy/run/checkpoint_1_20.pt`,
  `${PT}/extra/legacy-p4.pt`,
  `${PT}/extra/protocol5.pt`,
  `${PT}/extra/parameters.pt`,
  `${PT}/evil/eval/ckpt_step_200.pth`,
].map((f) => new Uint8Array(readFileSync(f)));

/** The data.pkl of each zip file (pickles alone, for the VM). */
const PICKLES = await Promise.all(
  VALID.filter((b) => b[0] === 0x50).map(async (b) => {
    const r = bytesReader(b, 'f');
    const rec = (await readZipDirectory(r, 'f')).find((x) => x.name.endsWith('data.pkl'))!;
    return readRecord(r, rec, 'f');
  }),
);

const mutate = (bases: Uint8Array[]) =>
  fc.oneof(
    fc
      .record({
        base: fc.constantFrom(...bases),
        edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      })
      .map(({ base, edits }) => {
        const b = base.slice();
        for (const [i, v] of edits) b[i % b.length] = v;
        return b;
      }),
    fc
      .record({ base: fc.constantFrom(...bases), cut: fc.nat() })
      .map(({ base, cut }) => base.slice(0, cut % (base.length + 1))),
    // a byte range of one file spliced into another place of it: plausible opcodes, wrong context
    fc
      .record({ base: fc.constantFrom(...bases), from: fc.nat(), to: fc.nat(), n: fc.integer({ min: 1, max: 32 }) })
      .map(({ base, from, to, n }) => {
        const b = base.slice();
        const f = from % b.length;
        b.copyWithin(to % b.length, f, Math.min(b.length, f + n));
        return b;
      }),
  );

/** Runs a pickle: a truncation (which the file readers turn into invalid-pickle) or only AvgCkptError. */
function pickleOnly(b: Uint8Array): void {
  try {
    runPickle(b, 'f', torchHooks('f', new Map()));
  } catch (e) {
    if (e instanceof PickleTruncated) return;
    ownError(() => {
      throw e;
    });
  }
}

async function openBytes(b: Uint8Array): Promise<void> {
  await openTorchFile(bytesReader(b, 'f.pt'), b.subarray(0, 64), 'f.pt');
}

describe('torch readers: fuzz', () => {
  it('the pickle VM on random bytes after a PROTO: only AvgCkptError (or a truncation the caller turns into one)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (rest) => pickleOnly(new Uint8Array([0x80, 0x02, ...rest]))),
      { numRuns: 3000 },
    );
  });

  it('the pickle VM on mutated torch pickles: only AvgCkptError', () => {
    fc.assert(fc.property(mutate(PICKLES), pickleOnly), { numRuns: 3000 });
  });

  it('whole files, random and mutated (zip and legacy): only AvgCkptError, quickly', async () => {
    const t0 = Date.now();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          mutate(VALID),
          fc.uint8Array({ maxLength: 256 }).map((b) => new Uint8Array([0x50, 0x4b, 0x03, 0x04, ...b])),
        ),
        async (b) => {
          await ownErrorAsync(openBytes(b));
        },
      ),
      { numRuns: 1500 },
    );
    expect(Date.now() - t0).toBeLessThan(60_000);
  });
});
