/**
 * The one error type of avg-ckpt. Every failure the user can act on is an AvgCkptError with a
 * code; the CLI maps codes to exit codes in exactly one place (`exitCodeFor`).
 */

/** Failure kinds. Each names one thing the user can fix. */
export type ErrorCode =
  // usage (exit 2)
  | 'usage'
  // safetensors validation, in the order the reference reader checks (exit 1)
  | 'header-too-small'
  | 'header-too-large'
  | 'invalid-header-length'
  | 'invalid-header'
  | 'invalid-header-schema'
  | 'duplicate-key'
  | 'invalid-offset'
  | 'validation-overflow'
  | 'tensor-invalid-info'
  | 'metadata-incomplete-buffer'
  // checkpoint formats
  | 'unknown-format'
  // sharded checkpoints
  | 'invalid-index'
  | 'missing-shard'
  | 'shard-path-escapes'
  | 'tensor-missing-from-shard'
  | 'tensor-in-two-shards'
  // PyTorch checkpoints
  | 'invalid-zip'
  | 'invalid-pickle'
  | 'unsafe-pickle'
  | 'no-state-dict'
  // series
  | 'no-checkpoints'
  | 'duplicate-step'
  | 'missing-step'
  | 'empty-selection'
  | 'series-mismatch'
  | 'unsupported-dtype'
  | 'unsupported-layout'
  | 'non-finite'
  | 'bad-weights'
  | 'bad-recipes'
  // output
  | 'output-exists'
  | 'output-is-input'
  // a merge split over processes (--part, --finalize)
  | 'missing-part'
  | 'stale-part'
  | 'io'
  // evaluation
  | 'invalid-npy'
  | 'invalid-onnx'
  | 'data-mismatch'
  | 'unmapped-initializers'
  | 'model-mismatch'
  | 'device-unavailable'
  | 'out-of-memory'
  // --eval-cmd: a candidate's command failed (timeout, exit code, no metric); no space for candidates
  | 'eval-command'
  | 'scratch-space'
  // a bug (exit 70)
  | 'internal';

export interface ErrorContext {
  /** The file the problem is in, as the user named it (or as discovered). */
  file?: string;
  /** The tensor inside that file, where one is concerned. */
  tensor?: string;
  cause?: unknown;
}

export class AvgCkptError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;
  readonly tensor?: string;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'AvgCkptError';
    this.code = code;
    this.file = context.file;
    this.tensor = context.tensor;
  }

  /** One line: `file: tensor "t": message`. */
  oneLine(): string {
    const parts: string[] = [];
    if (this.file !== undefined) parts.push(this.file);
    if (this.tensor !== undefined) parts.push(`tensor "${this.tensor}"`);
    parts.push(this.message);
    return parts.join(': ');
  }
}

/**
 * Every exit code of the tool, in one table (README "Errors and exit codes"): the outcome of a
 * command, and the signal that stopped it (128 + the signal's number, as shells report them).
 */
export const EXIT_CODES = {
  ok: 0,
  /** bad input or environment: an AvgCkptError of any code but `usage` and `internal` */
  input: 1,
  usage: 2,
  /** a bug: a foreign error (TypeError, ...) or an `internal` AvgCkptError */
  internal: 70,
  SIGHUP: 129,
  SIGINT: 130,
  SIGTERM: 143,
} as const;

/** The signals the CLI ends on, cleaning up first (SIGHUP: a closed terminal or dropped ssh session). */
export const EXIT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The exit code for an error thrown by a command. */
export function exitCodeFor(error: unknown): number {
  if (!(error instanceof AvgCkptError)) return EXIT_CODES.internal;
  switch (error.code) {
    case 'usage':
      return EXIT_CODES.usage;
    case 'internal':
      return EXIT_CODES.internal;
    default:
      return EXIT_CODES.input;
  }
}

/** Wraps a Node.js system error (ENOENT, ENOSPC, ...) as an `io` error that names the file. */
export function ioError(file: string, cause: unknown, doing: string): AvgCkptError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === 'ENOENT'
      ? 'no such file or folder'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'ENOSPC'
          ? 'no space left on the device'
          : code === 'EISDIR'
            ? 'is a folder, expected a file'
            : ((cause as Error | undefined)?.message ?? String(cause));
  return new AvgCkptError('io', `cannot ${doing}: ${why}`, { file, cause });
}
