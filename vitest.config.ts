import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The WebAssembly kernels, assembled from src/engine/kernels.wat next to it (as the build does in dist/).
    globalSetup: ['scripts/assemble-kernels.js'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores on CI: more workers only thrash.
    maxWorkers: 2,
  },
});
