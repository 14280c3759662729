/**
 * The environment a child process needs for WebGPU, or why there is none: the caller's own when
 * it already names a Vulkan driver (`source /work/team/lavapipe.env`, a real GPU), else Mesa's
 * lavapipe set up in .lvp/ by scripts/setup-lavapipe.sh. The driver is found at process start,
 * so WebGPU tests run their work in a child with this environment.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';

const LVP = join(ROOT, '.lvp');

export function webgpuEnv(): { env: NodeJS.ProcessEnv } | { skip: string } {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return { env: process.env };
  if (existsSync(join(LVP, 'lvp.json')) && !existsSync(join(LVP, 'unavailable'))) {
    const lib = join(LVP, 'root/usr/lib/x86_64-linux-gnu');
    const icd = join(LVP, 'lvp.json');
    return {
      env: {
        ...process.env,
        LD_LIBRARY_PATH: [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
        VK_ICD_FILENAMES: icd,
        VK_DRIVER_FILES: icd,
      },
    };
  }
  const why = existsSync(join(LVP, 'unavailable'))
    ? readFileSync(join(LVP, 'unavailable'), 'utf8').trim()
    : 'no Vulkan driver configured';
  return { skip: `WebGPU test skipped: ${why} (run \`bash scripts/setup-lavapipe.sh\` to set up lavapipe)` };
}
