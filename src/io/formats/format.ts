/**
 * The checkpoint-format seam. A format recognises its files by content and lists their tensors
 * with where their bytes are; discovery, the merge plan, the streaming engine and both sweep
 * engines see only `FormatFile`s and `TensorSource`s. To add a format: a folder io/<format>/
 * with an object implementing `CheckpointFormat`, and one line in registry.ts.
 */
import type { TensorSource } from './tensor-source.js';

export type { TensorSource } from './tensor-source.js';

/** Options a user can give for how files are opened (e.g. which state dict of a PyTorch file). */
export interface OpenOptions {
  /** Dotted path of the entry holding the tensors (`--key state_dict_ema`); formats without entries ignore it. */
  readonly key?: string;
}

/** One opened, validated checkpoint file. */
export interface FormatFile {
  readonly path: string;
  /** The format's name (`safetensors`, ...). */
  readonly format: string;
  /** Tensors in the file's order. */
  readonly tensors: readonly TensorSource[];
  /**
   * String metadata (safetensors `__metadata__`; for other formats, e.g. a `step` entry).
   * `step`/`global_step` give the checkpoint's step; `avg_ckpt` marks avg-ckpt's own outputs.
   */
  readonly metadata: Readonly<Record<string, string>>;
}

/** The file names a format uses: which files discovery considers, and how folders are laid out. */
export interface FormatNames {
  /** File name endings of checkpoints (`.safetensors`); also stripped before a step is read from a name. */
  readonly extensions: readonly string[];
  /** Other names that are checkpoints (e.g. an extensionless `checkpoint_<step>`). */
  readonly alsoCandidates?: readonly RegExp[];
  /** Names that are never checkpoints even though they match the above (`optimizer.pt`). */
  readonly never?: readonly RegExp[];
  /** The file holding the whole model inside a checkpoint folder (`model.safetensors`). */
  readonly single: readonly string[];
  /** Shards of a sharded checkpoint (`model-00001-of-00002.safetensors`). */
  readonly shard?: RegExp;
  /** Index files mapping tensors to shards, Hugging Face style (`{"weight_map": {...}}`). */
  readonly index: readonly string[];
}

export interface CheckpointFormat {
  readonly name: string;
  /**
   * True when the first bytes of a file (up to `HEAD_BYTES`, fewer for a short file) are this
   * format's. Decided by content, never by name.
   */
  detect(head: Uint8Array, fileSize: number): boolean;
  /** Opens and validates a file; tensor data is not read. */
  open(path: string, options: OpenOptions): Promise<FormatFile>;
  readonly names: FormatNames;
}

/** How many leading bytes `detect` is shown. */
export const HEAD_BYTES = 64;
