/** Writing a report file (JSON, SVG, HTML), with the one-line error every command gives. */
import { writeFile } from 'node:fs/promises';
import { ioError } from '../errors.js';

export async function writeReportFile(path: string, text: string): Promise<void> {
  try {
    await writeFile(path, text);
  } catch (e) {
    throw ioError(path, e, 'write the report');
  }
}
