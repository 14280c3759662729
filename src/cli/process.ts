/**
 * The process around the CLI: what every way out does (no temporary file left behind, the cursor
 * and line wrapping back), and the handlers of the CLI process, installed once by bin/ before the
 * commands load, so a signal during start-up is handled too.
 */
import { EXIT_CODES, EXIT_SIGNALS } from '../errors.js';
import { removeTemporaryOutputs } from '../io/atomic-output.js';
import { abortObjectOutputs, hasObjectOutputs } from '../io/storage/output.js';
import { restoreTerminal } from './terminal.js';

export function cleanUp(): void {
  removeTemporaryOutputs();
  restoreTerminal();
}

let installed = false;

/**
 * For the CLI process only (bin/avg-ckpt.js), once: a signal cleans up and exits with its code
 * (errors.ts EXIT_CODES); a closed stdout (`avg-ckpt ... | head -1`) ends the command quietly
 * instead of with a stack.
 */
export function installProcessHandlers(): void {
  if (installed) return;
  installed = true;
  for (const sig of EXIT_SIGNALS) {
    process.once(sig, () => {
      cleanUp();
      process.stderr.write(`\navg-ckpt: interrupted by ${sig}; nothing was written and temporary files were removed\n`);
      if (!hasObjectOutputs()) process.exit(EXIT_CODES[sig]);
      // S3 uploads in flight are aborted and the objects they completed deleted (a bounded wait)
      void abortObjectOutputs().finally(() => {
        cleanUp(); // what started meanwhile
        process.exit(EXIT_CODES[sig]);
      });
    });
  }
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    cleanUp();
    // the reader went away: what it read is all it wanted
    if (err.code === 'EPIPE') process.exit(EXIT_CODES.ok);
    process.stderr.write(`avg-ckpt: cannot write to stdout: ${err.message}\n`);
    process.exit(EXIT_CODES.input);
  });
}
