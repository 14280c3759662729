#!/usr/bin/env node
// CommonJS on purpose (bin/package.json): libuv sizes the thread pool that runs the file reads
// from UV_THREADPOOL_SIZE when the pool is first used, and an ES module entry point has used it
// already (the module loader reads through it). Here, first, the pool can follow the cores.
'use strict';
const { availableParallelism } = require('node:os');

const ownPool = process.env.UV_THREADPOOL_SIZE === undefined;
if (ownPool) process.env.UV_THREADPOOL_SIZE = String(Math.min(64, Math.max(4, availableParallelism())));

// Signals and a closed stdout are handled from the first moment; the commands load after.
import('../dist/cli/process.js')
  .then(({ installProcessHandlers }) => {
    installProcessHandlers();
    // the pool has started: the commands a sweep runs (--eval-cmd) do not inherit our setting
    if (ownPool) delete process.env.UV_THREADPOOL_SIZE;
    return import('../dist/cli/main.js');
  })
  .then(async ({ main }) => {
    process.exitCode = await main();
  });
