/**
 * A real S3-compatible server for tests: s3rver in-process on 127.0.0.1 (a free port, a temp
 * folder), behind a small proxy that records requests and injects faults (503 SlowDown storms,
 * bodies cut short). Both stop by themselves after `lifetimeMs` even if a test forgets.
 */
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

export interface Fault {
  /** Which requests it applies to. */
  match: (req: IncomingMessage) => boolean;
  /** How many matching requests it hits (then it is spent). */
  times: number;
  /**
   * '503': SlowDown; 'cut': the response body stops after `afterBytes` and the socket closes;
   * 'kill': the whole server dies on this request (connections dropped, new ones refused).
   */
  kind: '503' | 'cut' | 'kill';
  afterBytes?: number;
}

export interface TestS3 {
  endpoint: string;
  bucket: string;
  dir: string;
  /** Method and URL of every request the proxy saw. */
  requests: string[];
  faults: Fault[];
  /** A plain SDK client straight to the server, to check what the code under test wrote. */
  raw: S3Client;
  put(key: string, body: Uint8Array | string): Promise<void>;
  get(key: string): Promise<Buffer>;
  /** The keys below `prefix`, sorted. */
  keys(prefix: string): Promise<string[]>;
  /** Kills the server at once: open connections are dropped and new ones refused. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

const SLOW_DOWN =
  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/**
 * s3rver encrypts its ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 (Node
 * 17+) only has in its legacy provider: without this, every listing past one page (1,000 keys)
 * answers 500. Triple DES with three equal keys is single DES, and is in the default provider.
 */
function shimSingleDes(): void {
  const c = crypto as unknown as Record<'createCipheriv' | 'createDecipheriv', (...a: unknown[]) => unknown>;
  for (const name of ['createCipheriv', 'createDecipheriv'] as const) {
    const original = c[name];
    if ((original as { desShim?: true }).desShim) continue;
    const shimmed = (alg: unknown, key: unknown, ...rest: unknown[]) =>
      alg === 'des'
        ? original('des-ede3-cbc', Buffer.concat([key as Buffer, key as Buffer, key as Buffer]), ...rest)
        : original(alg, key, ...rest);
    c[name] = Object.assign(shimmed, { desShim: true as const });
  }
}

export async function startS3(bucket = 'avg-ckpt-test', lifetimeMs = 300_000): Promise<TestS3> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  shimSingleDes();
  // s3rver's fixed credentials, found by the client through the usual chain (the environment)
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  const dir = mkdtempSync(join(tmpdir(), 's3-avg-ckpt-'));
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const { port: upstream } = await s3rver.run();
  const requests: string[] = [];
  const faults: Fault[] = [];
  const sockets = new Set<Socket>();
  let stopped = false;
  const kill = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const s of sockets) s.destroy();
    proxy.close();
    const http = (s3rver as unknown as { httpServer: Server }).httpServer;
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  };

  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    const fault = faults.find((f) => f.times > 0 && f.match(req));
    if (fault !== undefined) fault.times--;
    if (fault?.kind === 'kill') {
      void kill();
      return;
    }
    if (fault?.kind === '503') {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/xml' }).end(SLOW_DOWN);
      return;
    }
    // s3rver does not implement AbortMultipartUpload; S3 answers it with 204 No Content.
    if (req.method === 'DELETE' && req.url?.includes('uploadId=')) {
      req.resume();
      res.writeHead(204).end();
      return;
    }
    // s3rver's continuation tokens use a cipher OpenSSL 3 refuses, so a truncated listing
    // fails there: small test buckets are listed whole instead (pagination is not tested).
    const path = req.url?.replace(/([?&])max-keys=\d+&?/, '$1');
    const up = request(
      { host: '127.0.0.1', port: upstream, method: req.method, path, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (fault?.kind !== 'cut') {
          upRes.pipe(res);
          return;
        }
        let sent = 0;
        upRes.on('data', (chunk: Buffer) => {
          const room = (fault.afterBytes ?? 0) - sent;
          if (room > 0) res.write(chunk.subarray(0, room));
          sent += chunk.byteLength;
          if (sent >= (fault.afterBytes ?? 0)) {
            upRes.destroy();
            res.socket?.destroy();
          }
        });
      },
    );
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  proxy.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(proxy);

  const timer = setTimeout(() => void kill(), lifetimeMs).unref();
  const raw = new S3Client({ endpoint: `http://127.0.0.1:${upstream}`, forcePathStyle: true, region: 'us-east-1' });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    dir,
    requests,
    faults,
    raw,
    put: async (key, body) => {
      await raw.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    get: async (key) => {
      const res = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    },
    keys: async (prefix) => {
      const res = await raw.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (res.Contents ?? []).map((o) => o.Key!).sort();
    },
    kill,
    stop: async () => {
      clearTimeout(timer);
      raw.destroy();
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
