/**
 * Writing a report file (JSON, SVG, HTML) atomically, with the one-line error every command
 * gives: a reader never sees half a report, and a failed write leaves the old one in place.
 * Local or `s3://` (see io/storage/output.ts).
 */
import { AvgCkptError, ioError } from '../errors.js';
import { writeWhole } from '../io/storage/output.js';

export async function writeReportFile(path: string, text: string): Promise<void> {
  // reports are regenerated on every run, so an existing one is replaced without --force
  try {
    await writeWhole(path, new TextEncoder().encode(text));
  } catch (e) {
    throw e instanceof AvgCkptError ? e : ioError(path, e, 'write the report');
  }
}
