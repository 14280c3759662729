#!/usr/bin/env node
// Signals and a closed stdout are handled from the first moment; the commands load after.
import { installProcessHandlers } from '../dist/cli/process.js';

installProcessHandlers();
const { main } = await import('../dist/cli/main.js');
process.exitCode = await main();
