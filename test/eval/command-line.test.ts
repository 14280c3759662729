/** --eval-cmd templates: split into argv words like sh, placeholders per word, shell quoting for --shell. */
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkTemplate, commandArgv, shellQuote, shellScript, splitCommand } from '../../src/eval/command-line.js';
import { ownError } from '../helpers/own-errors.js';

const values = { path: '/tmp/my scratch/lawa-8/', name: 'lawa-8', step: 1200 };

describe('splitCommand', () => {
  it('splits on whitespace and honours quotes and backslashes as sh does', () => {
    expect(splitCommand('python eval.py --model {path}')).toEqual(['python', 'eval.py', '--model', '{path}']);
    expect(splitCommand(`  a   'b c'  "d \\"e\\" \\\\ f" g\\ h '' x"y"'z' `)).toEqual([
      'a',
      'b c',
      'd "e" \\ f',
      'g h',
      '',
      'xyz',
    ]);
    expect(splitCommand(`python -c 'import json; print(json.dumps({"loss": 1}))' {path}`)).toEqual([
      'python',
      '-c',
      'import json; print(json.dumps({"loss": 1}))',
      '{path}',
    ]);
  });

  it('agrees with /bin/sh on any template of words, quotes and backslashes', () => {
    const template = fc.string({ unit: fc.constantFrom('a', 'b', ' ', "'", '"', '\\', '{', '}'), maxLength: 14 });
    fc.assert(
      fc.property(template, (t) => {
        let sh: string[] | undefined;
        try {
          sh = execFileSync('/bin/sh', ['-c', `printf '%s\\0' x ${t}`], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
          })
            .split('\0')
            .slice(1, -1);
        } catch {
          sh = undefined; // sh refuses it (an unclosed quote)
        }
        if (sh === undefined) expect(ownError(() => splitCommand(`x ${t}`))).toBe('usage');
        else expect(splitCommand(`x ${t}`).slice(1)).toEqual(sh);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses what would need a shell, unclosed quotes and an empty command (usage errors)', () => {
    for (const t of [
      'python eval.py {path} > log',
      'a | b',
      'a; b',
      'echo $HOME {path}',
      'a `b`',
      'a && b',
      '"$X"',
      "'open",
      '"open',
      '   ',
    ]) {
      expect(
        ownError(() => splitCommand(t)),
        t,
      ).toBe('usage');
    }
    expect(() => splitCommand('python eval.py {path} > log')).toThrow(/needs a shell .*--shell/);
    // quoted, the same characters are plain text
    expect(splitCommand(`echo '>' "|" \\;`)).toEqual(['echo', '>', '|', ';']);
  });
});

describe('placeholders', () => {
  it('substitutes {path} {name} {step} inside each word; a path with spaces stays one argument', () => {
    const words = splitCommand('eval --model={path} --tag "{name} at {step}" {other}');
    expect(commandArgv(words, values)).toEqual([
      'eval',
      '--model=/tmp/my scratch/lawa-8/',
      '--tag',
      'lawa-8 at 1200',
      '{other}',
    ]);
  });

  it('--shell: values are quoted so that sh reads them back literally', () => {
    for (const s of ['/tmp/my scratch/x', "it's", 'a"b$c`d\\e', 'plain/path-1.0']) {
      expect(execFileSync('/bin/sh', ['-c', `printf %s ${shellQuote(s)}`], { encoding: 'utf8' })).toBe(s);
    }
    expect(shellScript('python e.py {path} | tail -1', values)).toBe(`python e.py '/tmp/my scratch/lawa-8/' | tail -1`);
  });

  it('a template without {path} is refused', () => {
    expect(ownError(() => checkTemplate('python eval.py {name}'))).toBe('usage');
    expect(() => checkTemplate('python eval.py')).toThrow(/no \{path\}/);
    expect(ownError(() => checkTemplate('python eval.py {path}'))).toBe('ok');
  });
});
