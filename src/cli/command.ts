/**
 * A command whose handler's argument type is derived from its builder: renaming or retyping an
 * option is a compile error in the handler, with no cast in between.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';

export interface TypedCommand<U> {
  readonly command: string;
  readonly describe: string;
  readonly builder: (y: Argv) => Argv<U>;
  readonly handler: (args: ArgumentsCamelCase<U>) => Promise<void>;
}

export function defineCommand<U>(c: TypedCommand<U>): CommandModule<object, U> {
  return c;
}

/** The parsed arguments of a builder, as its handler receives them. */
export type ArgsOf<B extends (y: Argv) => Argv<unknown>> = ArgumentsCamelCase<
  ReturnType<B> extends Argv<infer U> ? U : never
>;
