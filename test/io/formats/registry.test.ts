/** The format registry: detection by content, the names discovery considers, refusal of the unknown. */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { isCandidateName, openCheckpointFile, stripCheckpointExtension } from '../../../src/io/formats/registry.js';
import { safetensorsFormat } from '../../../src/io/safetensors/format.js';
import { loadCheckpoint } from '../../../src/series/checkpoint.js';
import { concat, f32, put, rawFile, stFile, tempDir, u64le } from '../../helpers/st-bytes.js';

const tmp = tempDir();
afterAll(tmp.cleanup);

describe('detection by content', () => {
  it('a safetensors file under another name is read as safetensors', async () => {
    const p = put(join(tmp.dir, 'weights.bin'), stFile([{ name: 'a', dtype: 'F32', shape: [2], data: f32(1, 2) }]));
    const f = await openCheckpointFile(p);
    expect(f.format).toBe('safetensors');
    expect(f.tensors.map((t) => [t.name, t.dtype, t.shape, t.byteLength])).toEqual([['a', 'F32', [2], 8]]);
    expect((await loadCheckpoint(p)).format).toBe('safetensors');
  });
  it('bytes no format recognises, under a name no format claims: unknown-format naming the file', async () => {
    const p = put(join(tmp.dir, 'ckpt_step_5.gguf'), 'GGUF not really anything');
    await expect(openCheckpointFile(p)).rejects.toMatchObject({ code: 'unknown-format', file: p });
  });
  it("zip magic is PyTorch's whatever the name: a broken zip gets the zip reader's error", async () => {
    const p = put(join(tmp.dir, 'weights.data'), 'PK\x03\x04 not really anything');
    await expect(openCheckpointFile(p)).rejects.toMatchObject({ code: 'invalid-zip', file: p });
  });
  it("unrecognised bytes under a .safetensors name get safetensors' own validation error", async () => {
    const p = put(
      join(tmp.dir, 'cut.safetensors'),
      rawFile('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', 4).subarray(0, 12),
    );
    await expect(openCheckpointFile(p)).rejects.toMatchObject({ code: 'invalid-header-length', file: p });
  });
  it('safetensors detect: a header length that fits and a JSON object after it', () => {
    const json = new TextEncoder().encode('{"__metadata__": {}}');
    const ok = concat(u64le(json.length), json);
    expect(safetensorsFormat.detect(ok, ok.length)).toBe(true);
    expect(safetensorsFormat.detect(ok, ok.length - 1)).toBe(false); // header runs past the end
    expect(safetensorsFormat.detect(concat(u64le(json.length), new TextEncoder().encode('[1]')), 100)).toBe(false);
    expect(safetensorsFormat.detect(new TextEncoder().encode('PK\x03\x04abcdefgh'), 100)).toBe(false);
    expect(safetensorsFormat.detect(new Uint8Array(4), 4)).toBe(false);
  });
});

describe('names', () => {
  it.each([
    ['model.safetensors', true],
    ['ckpt_step_100.SAFETENSORS', true],
    ['.model_09.safetensors', false],
    ['notes.txt', false],
    ['trainer_state.json', false],
  ])('%s is a candidate: %s', (name, yes) => {
    expect(isCandidateName(name)).toBe(yes);
  });
  it('strips the checkpoint extension only', () => {
    expect(stripCheckpointExtension('ckpt_step_5.safetensors')).toBe('ckpt_step_5');
    expect(stripCheckpointExtension('run2.json')).toBe('run2.json');
  });
});
