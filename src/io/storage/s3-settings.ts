/**
 * How avg-ckpt talks to object storage, set from the command line (`--s3-endpoint`) or tests.
 * Apart from the client so that the command line sets it without loading the AWS SDK.
 */
import { DEFAULT_RETRY, type RetryPolicy } from './s3-retry.js';

export interface S3Settings {
  /** An S3-compatible endpoint (MinIO, GCS, ...); implies path-style addressing. */
  endpoint?: string;
  region?: string;
  retry: RetryPolicy;
  /** Bytes per ranged GET: a read larger than this is split into parallel GETs. */
  rangeBytes: number;
  /** Requests in flight at most, all objects together. */
  parallel: number;
  /** Bytes per multipart upload part (S3's minimum is 5 MiB). */
  partBytes: number;
}

const DEFAULTS: S3Settings = { retry: DEFAULT_RETRY, rangeBytes: 8 << 20, parallel: 16, partBytes: 16 << 20 };
let overrides: Partial<S3Settings> = {};
let current: S3Settings | undefined;
let fromEnv: string | undefined;

/** Settings from the command line (`--s3-endpoint`) or tests; the next `s3Store()` uses them. */
export function configureS3(settings: Partial<S3Settings>): void {
  overrides = { ...overrides, ...settings };
  current = undefined;
}

/** The settings in force: the same object until they change (the client is built once for them). */
export function s3Settings(): S3Settings {
  const env = process.env;
  const envEndpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const envKey = `${envEndpoint} ${env.AWS_MAX_ATTEMPTS}`;
  if (current === undefined || envKey !== fromEnv) {
    fromEnv = envKey;
    // AWS_MAX_ATTEMPTS: the AWS CLI's and SDKs' own setting for how many tries a request gets
    const attempts = Number(env.AWS_MAX_ATTEMPTS);
    const retry = Number.isSafeInteger(attempts) && attempts >= 1 ? { ...DEFAULTS.retry, attempts } : DEFAULTS.retry;
    current = { ...DEFAULTS, retry, ...overrides, endpoint: overrides.endpoint ?? envEndpoint };
  }
  return current;
}
