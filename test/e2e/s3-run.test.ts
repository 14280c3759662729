/**
 * Issue 12.2 end to end: a run in a real S3-compatible server (s3rver on 127.0.0.1) merges and
 * sweeps like the same run on disk: the same output bytes, the same report; globs list keys;
 * a failing upload leaves no object behind and says so in one line.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/st-bytes.js';
import { startS3, type TestS3 } from '../io/storage/s3-server.js';

const fixture = join(ROOT, 'fixtures', 'runs', 'digits-mlp');
const tmp = tempDir('avg-ckpt-e2e-s3-');
let s3: TestS3;
let env: Record<string, string>;

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

const get = (key: string) => s3.get(key);
const keys = (prefix: string) => s3.keys(prefix);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  ensureBuilt();
  s3 = await startS3();
  for (const f of files(fixture)) await s3.put(`digits/${f}`, readFileSync(join(fixture, f)));
  // the usual AWS chain, from the environment; --s3-endpoint is tested on one command
  env = {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: s3.endpoint,
    AWS_MAX_ATTEMPTS: '3',
  };
});
afterAll(async () => {
  await s3?.stop();
  tmp.cleanup();
});

const S3_RUN = 's3://avg-ckpt-test/digits/run';

describe('merge with s3:// paths', () => {
  it('a run in S3 into an S3 folder: the bytes of the same merge on disk, the success marker last', async () => {
    const local = join(tmp.dir, 'local-lawa');
    const a = await runCli(['merge', join(fixture, 'run'), '-m', 'lawa', '--last', '4', '-o', `${local}/`, '-q']);
    expect(a.code, a.stderr).toBe(0);
    const b = await runCli(['merge', S3_RUN, '-m', 'lawa', '--last', '4', '-o', 's3://avg-ckpt-test/out/lawa/', '-q'], {
      env,
    });
    expect(b.code, b.stderr).toBe(0);
    const want = files(local);
    expect(await keys('out/lawa/')).toEqual([...want.map((f) => `out/lawa/${f}`), 'out/lawa/_SUCCESS'].sort());
    for (const f of want) expect(sha(await get(`out/lawa/${f}`)), f).toBe(sha(readFileSync(join(local, f))));
    const last = s3.requests.filter((r) => r.startsWith('PUT /avg-ckpt-test/out/lawa/')).at(-1);
    expect(last).toMatch(/^PUT \/avg-ckpt-test\/out\/lawa\/_SUCCESS\?/);
  });

  it('--part I/3 on three processes, then --finalize, into S3: the bytes of one merge on disk, _SUCCESS last', async () => {
    const local = join(tmp.dir, 'local-parts');
    const args = ['-m', 'lawa', '--last', '5', '--shard-size', '40kB', '-q'];
    const a = await runCli(['merge', join(fixture, 'run'), ...args, '-o', `${local}/`]);
    expect(a.code, a.stderr).toBe(0);
    const out = 's3://avg-ckpt-test/out/parts/';
    const parts = await Promise.all(
      [0, 1, 2].map((i) => runCli(['merge', S3_RUN, ...args, '-o', out, '--part', `${i}/3`], { env })),
    );
    for (const p of parts) expect(p.code, p.stderr).toBe(0);
    expect(await keys('out/parts/_SUCCESS')).toEqual([]);
    const f = await runCli(['merge', S3_RUN, ...args, '-o', out, '--finalize'], { env });
    expect(f.code, f.stderr).toBe(0);
    const want = files(local);
    expect(await keys('out/parts/')).toEqual([...want.map((k) => `out/parts/${k}`), 'out/parts/_SUCCESS'].sort());
    for (const k of want) expect(sha(await get(`out/parts/${k}`)), k).toBe(sha(readFileSync(join(local, k))));
    const last = s3.requests
      .filter((r) => r.startsWith('PUT /avg-ckpt-test/out/parts/') && !r.includes('.avg-ckpt-parts'))
      .at(-1);
    expect(last).toMatch(/^PUT \/avg-ckpt-test\/out\/parts\/_SUCCESS\?/);
  }, 240_000);

  it('a glob over keys into a local file equals the same glob on disk', async () => {
    const local = join(tmp.dir, 'glob-local.safetensors');
    const viaS3 = join(tmp.dir, 'glob-s3.safetensors');
    const a = await runCli(['merge', join(fixture, 'run', 'checkpoint-*40'), '-o', local, '-q']);
    expect(a.code, a.stderr).toBe(0);
    const b = await runCli(['merge', `${S3_RUN}/checkpoint-*40`, '-o', viaS3, '-q'], { env });
    expect(b.code, b.stderr).toBe(0);
    expect(sha(readFileSync(viaS3))).toBe(sha(readFileSync(local)));
  });

  it('an upload that keeps failing: exit 1, one line naming the object, nothing left under the output', async () => {
    s3.faults.push({ kind: '503', times: 1000, match: (r) => r.method === 'PUT' && r.url!.includes('/out/failing/') });
    const r = await runCli(['merge', S3_RUN, '--last', '3', '-o', 's3://avg-ckpt-test/out/failing/', '-q'], { env });
    s3.faults.pop();
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^avg-ckpt: s3:\/\/avg-ckpt-test\/out\/failing\/model\.safetensors: cannot write: SlowDown/,
    );
    expect(await keys('out/failing')).toEqual([]);
  });

  it('a missing run names it (the endpoint given with --s3-endpoint)', async () => {
    const { AWS_ENDPOINT_URL: _, ...noEndpoint } = env;
    const args = ['merge', 's3://avg-ckpt-test/nothing-here', '-o', join(tmp.dir, 'x.safetensors'), '-q'];
    const r = await runCli([...args, '--s3-endpoint', s3.endpoint], { env: noEndpoint });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('avg-ckpt: s3://avg-ckpt-test/nothing-here: no such file or folder');
  });
});

describe('sweep-window with s3:// paths', () => {
  // materialize on both sides: the mixture engine cannot read from S3 (onnxruntime reads local files)
  it('run, model and data in S3 rank the windows exactly like the same files on disk', async () => {
    const args = (base: string, report: string) => [
      'sweep-window',
      `${base}/run`,
      '--onnx',
      `${base}/model.onnx`,
      '--input',
      `input=${base}/val_input.npy`,
      '--labels',
      `${base}/val_labels.npy`,
      '--windows',
      '2,3',
      '--engine',
      'materialize',
      '--report',
      report,
      '-q',
    ];
    const local = join(tmp.dir, 'sweep-local.json');
    const viaS3 = join(tmp.dir, 'sweep-s3.json');
    const a = await runCli(args(fixture, local));
    expect(a.code, a.stderr).toBe(0);
    const b = await runCli(args('s3://avg-ckpt-test/digits', viaS3), { env });
    expect(b.code, b.stderr).toBe(0);
    const strip = (p: string) => {
      const rep = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      return JSON.stringify(rep.candidates ?? rep.results ?? rep, (k, v) =>
        k === 'ms' || k === 'path' || k === 'file' ? undefined : v,
      );
    };
    expect(strip(viaS3)).toBe(strip(local));
    expect(relative(tmp.dir, viaS3)).toBe('sweep-s3.json');
  });
});
