#!/usr/bin/env node
/**
 * An evaluation command that fails on purpose for some candidates, and otherwise evaluates like
 * digits-mlp-eval.mjs.
 *
 * node misbehaving-eval.mjs NAME MODEL DATA_DIR [CANDIDATE=BEHAVIOUR ...]
 * BEHAVIOUR: exit (three stderr lines, exit code 3), sleep[:PIDFILE] (a minute; its pid written
 * to PIDFILE), silent (prints nothing), garbage (a broken JSON line), words (a last line that is
 * no metric), number (prints 0.125), other (a JSON object without "loss"), barrier:DIR:N (waits
 * until N candidates reached it).
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const [name, model, dataDir, ...rules] = process.argv.slice(2);
const behaviour = Object.fromEntries(rules.map((r) => r.split('=')))[name] ?? '';

if (behaviour === 'exit') {
  console.log('loading the model');
  console.error('Traceback (most recent call last):');
  console.error('  File "eval.py", line 3, in <module>');
  console.error('RuntimeError: CUDA out of memory');
  process.exit(3);
} else if (behaviour.startsWith('sleep')) {
  const pidFile = behaviour.split(':')[1];
  if (pidFile !== undefined) writeFileSync(pidFile, String(process.pid));
  await sleep(60_000);
} else if (behaviour === 'silent') {
  process.exit(0);
} else if (behaviour === 'garbage') {
  console.log('{"loss": 0.5,');
} else if (behaviour === 'words') {
  console.log('{"loss": 0.5}');
  console.log('evaluation done.');
} else if (behaviour === 'number') {
  console.log('0.125');
} else if (behaviour === 'other') {
  console.log('{"acc": 0.5}');
} else if (behaviour.startsWith('barrier:')) {
  const [, dir, n] = behaviour.split(':');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), '');
  for (let i = 0; i < 200 && readdirSync(dir).length < Number(n); i++) await sleep(50);
  if (readdirSync(dir).length < Number(n)) process.exit(9);
  console.log('{"loss": 1}');
} else {
  process.argv = [process.argv[0], process.argv[1], model, dataDir];
  await import('./digits-mlp-eval.mjs');
}
