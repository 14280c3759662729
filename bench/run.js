#!/usr/bin/env node
/**
 * `npm run bench`: the merge benchmarks (safetensors, then .pt against safetensors), then the sweep
 * benchmark where it exists, then --eval-cmd's batches against one merge per candidate.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let failed = false;
for (const name of ['merge.js', 'merge-pt.js', 'sweep.js', 'eval-cmd.js']) {
  const script = join(here, name);
  if (!existsSync(script)) {
    process.stderr.write(`bench: ${name} is absent, skipped\n`);
    continue;
  }
  const r = spawnSync(process.execPath, [script], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`bench: ${name} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})\n`);
    failed = true;
  }
}
process.exitCode = failed ? 1 : 0;
