/** safetensors as a checkpoint format: the header validated exactly as the reference reader does. */
import type { CheckpointFormat, FormatFile } from '../formats/format.js';
import { MAX_HEADER_SIZE } from './header.js';
import { readSafetensorsHeader } from './reader.js';

/** The names Hugging Face gives a safetensors model inside a checkpoint folder. */
export const SAFETENSORS_SINGLE_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

const OPEN_BRACE = 0x7b;
const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

export const safetensorsFormat: CheckpointFormat = {
  name: 'safetensors',

  /** An 8-byte header length that fits the file, followed by a JSON object. */
  detect(head: Uint8Array, fileSize: number): boolean {
    if (head.byteLength < 9) return false;
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n < 2n || n > BigInt(MAX_HEADER_SIZE) || 8 + Number(n) > fileSize) return false;
    let i = 8;
    while (i < head.byteLength && WHITESPACE.has(head[i])) i++;
    return head[i] === OPEN_BRACE;
  },

  async open(path: string): Promise<FormatFile> {
    const f = await readSafetensorsHeader(path);
    const tensors = f.header.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      file: path,
      position: f.position(t),
      byteLength: t.end - t.begin,
    }));
    return { path, format: 'safetensors', tensors, metadata: f.header.metadata };
  },

  names: {
    extensions: ['.safetensors'],
    single: [SAFETENSORS_SINGLE_FILE],
    shard: /^model-\d+-of-\d+\.safetensors$/,
    index: [SAFETENSORS_INDEX_FILE],
  },
};
