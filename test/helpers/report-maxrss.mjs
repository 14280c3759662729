// Preloaded into CLI children by tests (NODE_OPTIONS=--import=...): records peak RSS (KiB) at exit.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const file = process.env.AVG_CKPT_TEST_MAXRSS_FILE;
if (file) {
  process.on('exit', () => {
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, String(process.resourceUsage().maxRSS));
    } catch {
      // best effort: the test reports a missing measurement
    }
  });
}
