import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AvgCkptError } from '../../../src/errors.js';
import { isS3Path, joinS3Path, parseS3Path } from '../../../src/io/storage/s3-location.js';
import { S3Store } from '../../../src/io/storage/s3.js';
import type { S3Settings } from '../../../src/io/storage/s3-settings.js';
import { SUCCESS_MARKER } from '../../../src/io/storage/output.js';
import { S3ObjectWriter, S3Output } from '../../../src/io/storage/s3-writer.js';
import { startS3, type TestS3 } from './s3-server.js';

let s3: TestS3;
const FAST_RETRY = { attempts: 4, baseDelayMs: 2, maxDelayMs: 10 };

function store(extra: Partial<S3Settings> = {}): S3Store {
  return new S3Store({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    retry: FAST_RETRY,
    rangeBytes: 64 << 10,
    parallel: 4,
    partBytes: 5 << 20,
    ...extra,
  });
}

function url(key: string): string {
  return `s3://${s3.bucket}/${key}`;
}

// objects put and checked with a plain SDK client, independently of the code under test
const put = (key: string, body: Uint8Array | string) => s3.put(key, body);
const get = (key: string) => s3.get(key);
const keys = (prefix: string) => s3.keys(prefix);

async function failure(p: Promise<unknown>): Promise<AvgCkptError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AvgCkptError);
  return e as AvgCkptError;
}

beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

describe('s3:// paths', () => {
  it('splits bucket and key, keeps the scheme when joining, and refuses a malformed bucket', () => {
    expect(isS3Path('s3://b-1/x')).toBe(true);
    expect(isS3Path('./s3:/x')).toBe(false);
    expect(parseS3Path('s3://my.bucket/run/ckpt-1/model.safetensors')).toEqual({
      bucket: 'my.bucket',
      key: 'run/ckpt-1/model.safetensors',
    });
    expect(parseS3Path('s3://bkt')).toEqual({ bucket: 'bkt', key: '' });
    expect(joinS3Path('s3://bkt/run', 'a')).toBe('s3://bkt/run/a');
    expect(joinS3Path('s3://bkt/run/', 'a')).toBe('s3://bkt/run/a');
    const e = (() => {
      try {
        parseS3Path('s3://Bad_Bucket/x');
      } catch (err) {
        return err as AvgCkptError;
      }
    })();
    expect(e?.code).toBe('usage');
  });
});

describe('S3Store reads', () => {
  const data = randomBytes(1_000_003);
  beforeAll(async () => {
    await put('list/run/checkpoint-100/model.safetensors', data);
    await put('list/run/checkpoint-20/model.safetensors', 'x');
    await put('list/run/notes.txt', 'hello');
  });

  it('lists a prefix like a folder and tells objects from folders', async () => {
    const st = store();
    expect(await st.list(url('list/run'))).toEqual([
      { name: 'checkpoint-100', kind: 'dir', size: 0 },
      { name: 'checkpoint-20', kind: 'dir', size: 0 },
      { name: 'notes.txt', kind: 'file', size: 5 },
    ]);
    expect(await st.stat(url('list/run/notes.txt'))).toMatchObject({ kind: 'file', size: 5 });
    expect(await st.stat(url('list/run'))).toEqual({ kind: 'dir' });
    expect(await st.stat(url('list/run/'))).toEqual({ kind: 'dir' });
    expect(await st.stat(url('list/ru'))).toBeUndefined();
    expect(await st.stat(url('list/run/nothing'))).toBeUndefined();
  });

  it('lists a folder and a key prefix past one page (S3 returns at most 1,000 keys per request)', async () => {
    const names = Array.from({ length: 1003 }, (_, i) => `f${String(i).padStart(4, '0')}.bin`);
    for (let i = 0; i < names.length; i += 100)
      await Promise.all(names.slice(i, i + 100).map((n) => put(`many/${n}`, n)));
    await put('many/sub/x.bin', 'x');
    const st = store();
    const before = s3.requests.filter((r) => r.includes('list-type=2')).length;
    const listed = await st.list(url('many'));
    expect(listed.length).toBe(1004);
    expect(listed.filter((e) => e.kind === 'file').map((e) => e.name)).toEqual(names);
    expect(listed.find((e) => e.name === 'sub')).toEqual({ name: 'sub', kind: 'dir', size: 0 });
    const all = await st.listKeys(s3.bucket, 'many/');
    expect(all.map((k) => k.key).sort()).toEqual([...names.map((n) => `many/${n}`), 'many/sub/x.bin'].sort());
    expect(all.find((k) => k.key === 'many/f1002.bin')?.size).toBe(9);
    // two pages each: the second request carries the continuation token
    expect(s3.requests.filter((r) => r.includes('list-type=2')).length - before).toBe(4);
  });

  it('reads any range with parallel ranged GETs, byte for byte', async () => {
    const st = store();
    const path = url('list/run/checkpoint-100/model.safetensors');
    const before = s3.requests.filter((r) => r.startsWith('GET /avg-ckpt-test/list/run/checkpoint-100')).length;
    for (const [pos, len] of [
      [0, 8],
      [1, 300_000],
      [999_000, 1_003],
      [0, data.byteLength],
    ]) {
      const into = new Uint8Array(len);
      await st.read(path, pos, into);
      expect(Buffer.from(into).equals(data.subarray(pos, pos + len))).toBe(true);
    }
    const gets = s3.requests.filter((r) => r.startsWith('GET /avg-ckpt-test/list/run/checkpoint-100')).length - before;
    // 1 + 5 + 1 + 16 ranges of at most 64 KiB
    expect(gets).toBe(1 + Math.ceil(300_000 / 65536) + 1 + Math.ceil(data.byteLength / 65536));
    expect((await st.readWhole(path)).equals(data)).toBe(true);
  });

  it('refuses a read past the end of the object, naming it', async () => {
    const e = await failure(store().read(url('list/run/notes.txt'), 3, new Uint8Array(10)));
    expect(e.oneLine()).toMatch(/^s3:\/\/avg-ckpt-test\/list\/run\/notes\.txt: object ended at byte 5/);
  });

  it('names a missing object', async () => {
    const e = await failure(store().readWhole(url('list/run/missing.safetensors')));
    expect(e.oneLine()).toBe('s3://avg-ckpt-test/list/run/missing.safetensors: no such file or object');
  });
});

describe('S3 faults', () => {
  const data = randomBytes(400_000);
  beforeAll(() => put('faults/a.bin', data));

  it('rides out a 503 SlowDown storm shorter than its retries', async () => {
    const st = store();
    await st.open(url('faults/a.bin'));
    s3.faults.push({ kind: '503', times: 6, match: (r) => r.method === 'GET' && r.url!.includes('faults/a.bin') });
    const into = new Uint8Array(data.byteLength);
    await st.read(url('faults/a.bin'), 0, into);
    expect(Buffer.from(into).equals(data)).toBe(true);
    expect(s3.faults.at(-1)!.times).toBe(0);
  });

  it('fails with one line naming the object when the storm outlasts the retries', async () => {
    const st = store();
    await st.open(url('faults/a.bin'));
    s3.faults.push({ kind: '503', times: 1000, match: (r) => r.method === 'GET' && r.url!.includes('faults/a.bin') });
    const e = await failure(st.read(url('faults/a.bin'), 0, new Uint8Array(1000)));
    s3.faults.pop();
    expect(e.oneLine()).toBe(
      's3://avg-ckpt-test/faults/a.bin: cannot read bytes 0-999: SlowDown: Please reduce your request rate. (HTTP 503, still failing after retries)',
    );
    expect(e.oneLine()).not.toContain('\n');
  });

  it('retries a body cut short by a dropped connection', async () => {
    const st = store();
    await st.open(url('faults/a.bin'));
    s3.faults.push({
      kind: 'cut',
      afterBytes: 1000,
      times: 2,
      match: (r) => r.method === 'GET' && r.url!.includes('faults/a.bin'),
    });
    const into = new Uint8Array(data.byteLength);
    await st.read(url('faults/a.bin'), 0, into);
    expect(Buffer.from(into).equals(data)).toBe(true);
    expect(s3.faults.at(-1)!.times).toBe(0);
  });

  it('names an object deleted or replaced after it was opened', async () => {
    await put('faults/gone.bin', data);
    await put('faults/replaced.bin', data);
    const st = store();
    await st.open(url('faults/gone.bin'));
    await st.open(url('faults/replaced.bin'));
    await s3.raw.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: 'faults/gone.bin' }));
    await put('faults/replaced.bin', randomBytes(data.byteLength));
    const gone = await failure(st.read(url('faults/gone.bin'), 0, new Uint8Array(100)));
    expect(gone.oneLine()).toBe('s3://avg-ckpt-test/faults/gone.bin: was deleted while avg-ckpt read it');
    const replaced = await failure(st.read(url('faults/replaced.bin'), 0, new Uint8Array(100)));
    expect(replaced.oneLine()).toBe(
      's3://avg-ckpt-test/faults/replaced.bin: was replaced while avg-ckpt read it (its ETag changed)',
    );
  });
});

describe('S3 outputs', () => {
  it('writes a multipart object byte for byte, parts uploaded while the next fills', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 17);
    const w = new S3ObjectWriter(store(), url('out/big.bin'), data.byteLength);
    for (let off = 0; off < data.byteLength; off += 999_983) await w.write(data.subarray(off, off + 999_983));
    expect(await keys('out/big.bin')).toEqual([]); // nothing visible before completion
    await w.close(data.byteLength);
    expect((await get('out/big.bin')).equals(data)).toBe(true);
    const uploads = s3.requests.filter(
      (r) => r.startsWith('PUT /avg-ckpt-test/out/big.bin?') && r.includes('partNumber='),
    );
    expect(uploads.length).toBe(3); // 5 MiB + 5 MiB + the rest
  });

  it('writes a small object with one PUT', async () => {
    const w = new S3ObjectWriter(store(), url('out/small.json'));
    await w.write(new TextEncoder().encode('{"a":1}'));
    await w.close();
    expect((await get('out/small.json')).toString()).toBe('{"a":1}');
  });

  it('commits a folder with the success marker written last', async () => {
    const out = await S3Output.begin(store(), url('out/folder'), 'dir', false);
    const w = out.create('model.safetensors');
    await w.write(new Uint8Array([1, 2, 3]));
    await w.close(3);
    await out.put('config.json', new TextEncoder().encode('{}'));
    expect(await keys('out/folder/')).toEqual(['out/folder/config.json', 'out/folder/model.safetensors']);
    await out.commit();
    expect(await keys('out/folder/')).toEqual([
      'out/folder/_SUCCESS',
      'out/folder/config.json',
      'out/folder/model.safetensors',
    ]);
    const puts = s3.requests.filter((r) => r.startsWith('PUT /avg-ckpt-test/out/folder/'));
    expect(puts.at(-1)).toBe(`PUT /avg-ckpt-test/out/folder/${SUCCESS_MARKER}?x-id=PutObject`);
    const again = await failure(S3Output.begin(store(), url('out/folder'), 'dir', false));
    expect(again.code).toBe('output-exists');
  });

  it('--force replaces a folder: the old objects, marker first, are gone before the new ones are written', async () => {
    await put('out/forced/old-shard.safetensors', 'old');
    await put(`out/forced/${SUCCESS_MARKER}`, '');
    const out = await S3Output.begin(store(), url('out/forced'), 'dir', true);
    expect(await keys('out/forced/')).toEqual([]);
    await out.put('model.safetensors', new Uint8Array([9]));
    await out.commit();
    expect(await keys('out/forced/')).toEqual(['out/forced/_SUCCESS', 'out/forced/model.safetensors']);
  });

  it('abort deletes the finished objects and aborts the multipart upload in progress', async () => {
    const out = await S3Output.begin(store(), url('out/aborted'), 'dir', false);
    await out.put('model-00001-of-00002.safetensors', new Uint8Array(100));
    const w = out.create('model-00002-of-00002.safetensors', 11 << 20);
    await w.write(randomBytes(6 << 20)); // one part uploaded, the multipart upload started
    expect(
      s3.requests.some((r) => r.startsWith('POST /avg-ckpt-test/out/aborted/model-00002-of-00002.safetensors?uploads')),
    ).toBe(true);
    await out.abort();
    expect(await keys('out/aborted')).toEqual([]);
    expect(
      s3.requests.filter((r) =>
        r.startsWith('DELETE /avg-ckpt-test/out/aborted/model-00002-of-00002.safetensors?uploadId='),
      ),
    ).toHaveLength(1);
  });

  it('a part that keeps failing fails the write with one line; discard leaves no object', async () => {
    s3.faults.push({
      kind: '503',
      times: 1000,
      match: (r) => r.method === 'PUT' && r.url!.includes('out/failing.bin'),
    });
    const w = new S3ObjectWriter(store(), url('out/failing.bin'));
    const e = await failure(
      (async () => {
        await w.write(randomBytes(16 << 20));
        await w.close();
      })(),
    );
    s3.faults.pop();
    await w.discard();
    expect(e.oneLine()).toMatch(
      /^s3:\/\/avg-ckpt-test\/out\/failing\.bin: cannot upload part \d: SlowDown: .*HTTP 503/,
    );
    expect(await keys('out/failing.bin')).toEqual([]);
  });
});

describe('a server killed mid-read', () => {
  it('fails with one line naming the object, after its retries', async () => {
    const mine = await startS3('killed-bucket');
    try {
      await mine.put('k.bin', randomBytes(600_000));
      const st = new S3Store({
        endpoint: mine.endpoint,
        region: 'us-east-1',
        retry: FAST_RETRY,
        rangeBytes: 64 << 10,
        parallel: 2,
        partBytes: 5 << 20,
      });
      let seen = 0;
      mine.faults.push({ kind: 'kill', times: 1, match: (r) => r.method === 'GET' && ++seen === 3 });
      const e = await failure(st.read('s3://killed-bucket/k.bin', 0, new Uint8Array(600_000)));
      expect(e.oneLine()).toMatch(
        /^s3:\/\/killed-bucket\/k\.bin: cannot read bytes 0-599999: cannot reach the S3 endpoint \(ECONN(REFUSED|RESET)\)$/,
      );
      st.client.destroy();
    } finally {
      await mine.stop();
    }
  });
});
