/**
 * Retries for object storage: throttling (503 SlowDown), server errors and dropped
 * connections are retried with capped exponential backoff and full jitter (so that many
 * readers throttled together do not come back together); anything else fails at once.
 */

export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** About a minute of backoff in all before giving up: long enough for a throttling burst to pass. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 200, maxDelayMs: 15_000 };

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'TimeoutError',
  'AbortError',
]);
const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** An error the transfer itself found (a body shorter than its Content-Length): worth another try. */
export class TransientError extends Error {
  readonly transient = true;
}

interface ErrorShape {
  name?: string;
  code?: string;
  transient?: boolean;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

export function isRetryable(e: unknown): boolean {
  const err = e as ErrorShape | undefined;
  if (err === undefined || err === null) return false;
  if (err.transient === true || err.$retryable !== undefined) return true;
  const status = err.$metadata?.httpStatusCode;
  if (status !== undefined && (status === 429 || status >= 500)) return true;
  if (err.name !== undefined && RETRYABLE_NAMES.has(err.name)) return true;
  return err.code !== undefined && RETRYABLE_CODES.has(err.code);
}

/** The delay before try `attempt` (1 = the first retry). */
export function backoffMs(policy: RetryPolicy, attempt: number, random = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * cap);
}

/**
 * Runs `op` until it succeeds, fails with an error that is not retryable, or runs out of
 * tries; the last error is thrown. `signal` stops waiting (another part already failed).
 */
export async function withRetries<T>(op: () => Promise<T>, policy: RetryPolicy, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (attempt >= policy.attempts || !isRetryable(e) || signal?.aborted === true) throw e;
    }
    await new Promise((r) => setTimeout(r, backoffMs(policy, attempt)));
  }
}
