/**
 * PyTorch `torch.save` files as a checkpoint format: the zip format and the legacy one, detected
 * by content. Names: the suffixes training code uses, AlgoPerf's extensionless
 * `checkpoint_<step>`, Hugging Face's `pytorch_model.bin` (sharded with its index); the other
 * pickles of a Trainer folder (optimizer, scheduler, RNG state, arguments) are never opened.
 */
import type { CheckpointFormat, FormatFile, OpenOptions } from '../formats/format.js';
import { HEAD_BYTES } from '../formats/format.js';
import { openReader, storageError } from '../storage/storage.js';
import { isTorchFile, openTorchFile } from './torch-file.js';

export const PYTORCH_SINGLE_FILE = 'pytorch_model.bin';
export const PYTORCH_INDEX_FILE = 'pytorch_model.bin.index.json';

/** Metadata key naming the state dict a file's tensors came from ('' for a plain state dict). */
export const STATE_DICT_KEY = 'state_dict_key';

export const pytorchFormat: CheckpointFormat = {
  name: 'pytorch',

  detect: (head: Uint8Array) => isTorchFile(head),

  async open(path: string, options: OpenOptions): Promise<FormatFile> {
    let reader: Awaited<ReturnType<typeof openReader>>;
    try {
      reader = await openReader(path);
    } catch (e) {
      throw storageError(path, e, 'open');
    }
    try {
      const head = new Uint8Array(Math.min(HEAD_BYTES, reader.size));
      await reader.read(0, head);
      const f = await openTorchFile(reader, head, path, { key: options.key });
      const metadata: Record<string, string> = { [STATE_DICT_KEY]: f.key };
      if (f.step !== undefined) metadata.step = String(f.step);
      return { path, format: 'pytorch', tensors: f.tensors, metadata };
    } catch (e) {
      throw storageError(path, e, 'read');
    } finally {
      await reader.close().catch(() => undefined);
    }
  },

  names: {
    extensions: ['.pth.tar', '.pt', '.pth', '.bin', '.ckpt'],
    alsoCandidates: [/^checkpoint_\d+$/],
    never: [/^training_args\.bin$/, /^optimizer\.pt$/, /^scheduler\.pt$/, /^rng_state.*\.pth$/, /^scaler\.pt$/],
    single: [PYTORCH_SINGLE_FILE],
    shard: /^pytorch_model-\d+-of-\d+\.bin$/,
    index: [PYTORCH_INDEX_FILE],
  },
};
