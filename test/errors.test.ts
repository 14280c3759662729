import { describe, expect, it } from 'vitest';
import { AvgCkptError, EXIT_CODES, exitCodeFor, ioError } from '../src/errors.js';

describe('exit codes', () => {
  it('usage 2, internal 70, every other code 1, foreign errors 70; signals 128 + their number', () => {
    expect(exitCodeFor(new AvgCkptError('usage', 'x'))).toBe(2);
    expect(exitCodeFor(new AvgCkptError('internal', 'x'))).toBe(70);
    // what a shell reports for a process its signal ended: 128 + SIGHUP 1, SIGINT 2, SIGTERM 15
    expect([EXIT_CODES.SIGHUP, EXIT_CODES.SIGINT, EXIT_CODES.SIGTERM]).toEqual([129, 130, 143]);
    for (const c of [
      'header-too-small',
      'invalid-offset',
      'missing-shard',
      'series-mismatch',
      'io',
      'output-exists',
      'non-finite',
      'invalid-npy',
    ] as const) {
      expect(exitCodeFor(new AvgCkptError(c, 'x'))).toBe(1);
    }
    expect(exitCodeFor(new TypeError('x'))).toBe(70);
    expect(exitCodeFor('a string')).toBe(70);
    expect(exitCodeFor(undefined)).toBe(70);
  });
});

describe('messages', () => {
  it('one line: file, tensor, message', () => {
    expect(
      new AvgCkptError('invalid-offset', 'invalid offset', { file: 'runs/x/model.safetensors', tensor: 'w' }).oneLine(),
    ).toBe('runs/x/model.safetensors: tensor "w": invalid offset');
    expect(new AvgCkptError('usage', 'bad flag').oneLine()).toBe('bad flag');
  });
  it('keeps the cause', () => {
    const cause = new Error('inner');
    expect(new AvgCkptError('io', 'x', { cause }).cause).toBe(cause);
  });
  it('ioError names the file and says what happened', () => {
    const mk = (code: string) => Object.assign(new Error(`${code}: raw`), { code });
    expect(ioError('/a', mk('ENOENT'), 'open').oneLine()).toBe('/a: cannot open: no such file or folder');
    expect(ioError('/a', mk('ENOSPC'), 'write').oneLine()).toBe('/a: cannot write: no space left on the device');
    expect(ioError('/a', mk('EACCES'), 'open').message).toContain('permission denied');
    expect(ioError('/a', mk('EISDIR'), 'open').message).toContain('is a folder');
    expect(ioError('/a', mk('EIO'), 'read').message).toContain('EIO: raw');
    expect(ioError('/a', mk('EIO'), 'read').code).toBe('io');
  });
});
