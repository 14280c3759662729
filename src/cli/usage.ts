/**
 * Usage errors in the tool's own words, one line with a suggestion: a mistyped command names the
 * nearest command (and all of them), a mistyped option the nearest option of that command.
 */
import yargs, { type Argv } from 'yargs';
import { closest } from '../recipes/registry.js';

/** What this needs of a command module: its name and its builder. */
export interface UsageCommand {
  readonly command?: string | readonly string[];
  readonly builder?: ((y: Argv) => unknown) | object;
}

/** The option names (without dashes, aliases included) a command's builder declares. */
function optionsOf(command: UsageCommand): string[] {
  const builder = command.builder;
  if (typeof builder !== 'function') return [];
  // yargs keeps the declared options on the instance; its typings do not list getOptions
  const built = builder(yargs([])) as unknown as { getOptions(): { key: Record<string, unknown> } };
  return Object.keys(built.getOptions().key);
}

function nameOf(command: UsageCommand): string {
  return String(command.command).split(' ')[0];
}

/**
 * The one line for a usage failure yargs reported as `message` for `argv`; messages it does not
 * recognise are returned as they are.
 */
export function usageLine(message: string, argv: readonly string[], commands: readonly UsageCommand[]): string {
  const names = commands.map(nameOf);
  const first = argv.find((w) => !w.startsWith('-'));
  if (first !== undefined && !names.includes(first)) {
    const near = closest(first, names);
    return `unknown command ${first}${near === undefined ? '' : `; did you mean ${near}?`} (commands: ${names.join(', ')})`;
  }
  const unknown = /^Unknown arguments?: (.*)$/.exec(message);
  const command = commands.find((c) => nameOf(c) === first);
  if (unknown === null || command === undefined) return message;
  const known = optionsOf(command).filter((o) => o.length > 1);
  const words = unknown[1].split(', ').map((w) => w.trim());
  const options = words.filter((w) => argv.some((a) => a === `--${w}` || a.startsWith(`--${w}=`) || a === `-${w}`));
  if (options.length === 0) return `unexpected argument${words.length > 1 ? 's' : ''}: ${words.join(', ')}`;
  return options
    .map((o) => {
      const near = closest(o, known);
      return `unknown option --${o} for ${nameOf(command)}${near === undefined ? '' : `; did you mean --${near}?`}`;
    })
    .join('; ');
}
