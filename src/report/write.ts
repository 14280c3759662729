/**
 * Writing a report file (JSON, SVG, HTML) atomically, with the one-line error every command
 * gives: a reader never sees half a report, and a failed write leaves the old one in place.
 */
import { writeFile } from 'node:fs/promises';
import { AvgCkptError, ioError } from '../errors.js';
import { AtomicOutput } from '../io/atomic-output.js';

export async function writeReportFile(path: string, text: string): Promise<void> {
  // reports are regenerated on every run, so an existing one is replaced without --force
  const out = await AtomicOutput.begin(path, 'file', true);
  try {
    await writeFile(out.tempPath, text, { flush: true });
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e instanceof AvgCkptError ? e : ioError(path, e, 'write the report');
  }
}
