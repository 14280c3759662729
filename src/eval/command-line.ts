/**
 * `--eval-cmd` templates: split into argv words as a POSIX shell would split them (quotes and
 * backslashes, nothing else), then `{path}`, `{name}` and `{step}` substituted inside each word,
 * so a candidate path with spaces stays one argument and no shell ever sees it. With `--shell`
 * the template goes to `/bin/sh -c` and the values are substituted shell-quoted.
 */
import { AvgCkptError } from '../errors.js';

/** What a template may refer to, per candidate. */
export interface CommandValues {
  /** The candidate's file or folder. */
  readonly path: string;
  /** The candidate's name (`lawa-8`, `ema-0.9`, `lawa-5@400` in `curve`). */
  readonly name: string;
  /** The newest step the candidate averages. */
  readonly step: number;
}

const PLACEHOLDER = /\{(path|name|step)\}/g;

/** Characters a shell would act on; outside quotes and without --shell they are refused, not passed on. */
const SHELL_ONLY = new Set(['|', '&', ';', '<', '>', '(', ')', '`', '$']);

function usage(template: string, why: string): AvgCkptError {
  return new AvgCkptError('usage', `--eval-cmd '${template}': ${why}`);
}

/** The words of `template`: whitespace separates, '...' is literal, "..." honours \" \\ \$ \`, \x is x. */
export function splitCommand(template: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (c === "'") {
      const end = template.indexOf("'", i + 1);
      if (end < 0) throw usage(template, 'a single quote is not closed');
      word += template.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= template.length) throw usage(template, 'a double quote is not closed');
        const d = template[i];
        if (d === '"') break;
        if (d === '\\' && i + 1 < template.length && '"\\$`'.includes(template[i + 1])) word += template[++i];
        else if (d === '$' || d === '`')
          throw usage(template, `${d} inside double quotes would need a shell: quote it with '...' or pass --shell`);
        else word += d;
      }
    } else if (c === '\\') {
      word += i + 1 < template.length ? template[++i] : c; // a trailing backslash is itself, as in sh
      inWord = true;
    } else if (SHELL_ONLY.has(c)) {
      throw usage(template, `"${c}" needs a shell (pipes, redirections, variables): pass --shell, or quote it`);
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  if (words.length === 0) throw usage(template, 'no command');
  return words;
}

function substitute(word: string, values: CommandValues, quote: (s: string) => string): string {
  return word.replace(PLACEHOLDER, (_, key: keyof CommandValues) => quote(String(values[key])));
}

/** The argv of one candidate's command (no shell). */
export function commandArgv(words: readonly string[], values: CommandValues): string[] {
  return words.map((w) => substitute(w, values, (s) => s));
}

/** A word as POSIX sh reads it back literally. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The `/bin/sh -c` script of one candidate's command (--shell). */
export function shellScript(template: string, values: CommandValues): string {
  return substitute(template, values, shellQuote);
}

/** Refuses a template without {path}: every candidate would get the same score. */
export function checkTemplate(template: string): void {
  if (!template.includes('{path}'))
    throw usage(template, 'it has no {path}: put {path} where the command takes the model');
}
