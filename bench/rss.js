#!/usr/bin/env node
/**
 * Runs a script in this process and prints its peak RSS on exit: the fallback for machines
 * without GNU time (Node cannot read a child's rusage). Usage: node bench/rss.js SCRIPT ARGS...
 */
import { pathToFileURL } from 'node:url';

const script = process.argv[2];
process.argv.splice(1, 1); // the script sees the argv it would see when run directly
process.on('exit', () => process.stderr.write(`maxRSS_kB=${process.resourceUsage().maxRSS}\n`));
await import(pathToFileURL(script).href);
