#!/usr/bin/env node
/**
 * Assembles src/engine/kernels.wat (the engine's WebAssembly kernels) with wabt into
 * `kernels.wasm` (shared-memory import, for the worker threads) and `kernels-plain.wasm` (the
 * same code importing a plain memory) in a folder: dist/engine/ from `npm run build`,
 * src/engine/ (git-ignored) as vitest's global setup (the tests run the TypeScript sources).
 * Usage: node scripts/assemble-kernels.js OUT_DIR
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import wabt from 'wabt';

export const WAT = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'engine', 'kernels.wat');
const SHARED_IMPORT = '(memory 1 65536 shared)';
const PLAIN_IMPORT = '(memory 1 65536)';
const FEATURES = { simd: true, threads: true, multi_value: true, bulk_memory: true };

/** The two binaries, from the text of kernels.wat. */
export async function assembleKernels(text = readFileSync(WAT, 'utf8')) {
  if (text.split(SHARED_IMPORT).length !== 2) throw new Error(`${WAT}: expected one memory import ${SHARED_IMPORT}`);
  const w = await wabt();
  const assemble = (source) => {
    const mod = w.parseWat(WAT, source, FEATURES);
    try {
      mod.validate(FEATURES);
      return mod.toBinary({}).buffer;
    } finally {
      mod.destroy();
    }
  };
  return { shared: assemble(text), plain: assemble(text.replace(SHARED_IMPORT, PLAIN_IMPORT)) };
}

/** Writes both binaries into `dir` (each by rename, so a concurrent reader never sees half a file). */
export async function writeKernels(dir) {
  const { shared, plain } = await assembleKernels();
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of [
    ['kernels.wasm', shared],
    ['kernels-plain.wasm', plain],
  ]) {
    const tmp = join(dir, `.${name}.${process.pid}.tmp`);
    writeFileSync(tmp, bytes);
    renameSync(tmp, join(dir, name));
  }
}

/** vitest globalSetup (vitest.config.ts). */
export async function setup() {
  await writeKernels(dirname(WAT));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  if (process.argv[2] === undefined) {
    process.stderr.write('usage: node scripts/assemble-kernels.js OUT_DIR\n');
    process.exit(2);
  }
  await writeKernels(process.argv[2]);
}
