/** For fuzz tests: the outcome of a call as 'ok' or the AvgCkptError code; any other error fails the test. */
import { AvgCkptError } from '../../src/errors.js';

function codeOf(e: unknown): string {
  if (!(e instanceof AvgCkptError)) throw new Error(`foreign error: ${(e as Error)?.stack ?? String(e)}`);
  return e.code;
}

export function ownError(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    return codeOf(e);
  }
}

export async function ownErrorAsync(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return codeOf(e);
  }
}
