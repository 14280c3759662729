/** The output guard on real paths: symlinks, `..`, hard links, folders above and below an input. */
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AvgCkptError } from '../../src/errors.js';
import { checkpointInputs, guardOutputs } from '../../src/io/output-guard.js';
import { tempDir } from '../helpers/st-bytes.js';

const tmp = tempDir('avg-ckpt-guard-');
afterAll(tmp.cleanup);
const run = join(tmp.dir, 'runs', 'x');
const ck = join(run, 'checkpoint-20');
const file = join(ck, 'model.safetensors');
mkdirSync(ck, { recursive: true });
writeFileSync(file, 'weights');
writeFileSync(join(ck, 'trainer_state.json'), '{}');
const inputs = checkpointInputs([{ path: ck, files: [file] }]);

async function refusal(output: string): Promise<AvgCkptError | undefined> {
  return guardOutputs([{ path: output, role: 'output' }], inputs).then(
    () => undefined,
    (e: AvgCkptError) => e,
  );
}

describe('guardOutputs', () => {
  it('refuses the input itself, a folder holding it, and a path inside an input folder, naming both', async () => {
    for (const [out, how] of [
      [ck, 'is'],
      [file, 'is'],
      [run, 'holds'],
      [tmp.dir, 'holds'],
      [join(ck, 'new.safetensors'), 'lies inside'],
      [join(ck, 'sub', 'deeper', 'x'), 'lies inside'],
    ] as const) {
      const e = await refusal(out);
      expect(e, out).toBeInstanceOf(AvgCkptError);
      expect(e!.code).toBe('output-is-input');
      expect(e!.file).toBe(out);
      expect(e!.message).toContain(` ${how} the checkpoint `);
      expect(e!.oneLine()).not.toContain('\n');
    }
  });

  it('sees through `..`, relative paths and symlinks (of the file and of a folder above it)', async () => {
    expect((await refusal(`${run}/checkpoint-20/../checkpoint-20/model.safetensors`))?.code).toBe('output-is-input');
    expect((await refusal(relative(process.cwd(), file)))?.code).toBe('output-is-input');
    const linkToFile = join(tmp.dir, 'alias.safetensors');
    symlinkSync(file, linkToFile);
    expect((await refusal(linkToFile))?.code).toBe('output-is-input');
    const linkToRun = join(tmp.dir, 'runlink');
    symlinkSync(run, linkToRun);
    expect((await refusal(join(linkToRun, 'checkpoint-20')))?.code).toBe('output-is-input');
    expect((await refusal(join(linkToRun, 'checkpoint-20', 'new-file')))?.code).toBe('output-is-input');
    // `elsewhere/link/..` is the parent of the link's target for the kernel, not `elsewhere`
    const far = join(tmp.dir, 'far');
    mkdirSync(far);
    symlinkSync(ck, join(far, 'ckl'));
    expect((await refusal(`${far}/ckl/../checkpoint-20`))?.code).toBe('output-is-input');
  });

  it('refuses a hard link of an input file, saying it is the same file by another name', async () => {
    const hard = join(tmp.dir, 'hard.safetensors');
    linkSync(file, hard);
    const e = await refusal(hard);
    expect(e?.code).toBe('output-is-input');
    expect(e?.message).toContain('the same file, by another name');
  });

  it('lets through a sibling, a new file beside the checkpoints, and a name that only starts like an input', async () => {
    for (const out of [
      join(run, 'lawa8.safetensors'),
      join(run, 'checkpoint-2'),
      join(run, 'checkpoint-20x'),
      join(tmp.dir, 'out', 'avg'),
    ]) {
      expect(await refusal(out), out).toBeUndefined();
    }
  });

  it('refuses two outputs that are the same file', async () => {
    const out = join(tmp.dir, 'r.json');
    const e = await guardOutputs(
      [
        { path: out, role: 'report' },
        { path: join(tmp.dir, '.', 'r.json'), role: 'page' },
      ],
      inputs,
    ).catch((x: AvgCkptError) => x);
    expect(e).toMatchObject({ code: 'usage' });
  });
});
