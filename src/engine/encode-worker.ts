/** The encode worker (see encoder.ts): takes blocks of each posted chunk, answers when done. */
import { parentPort } from 'node:worker_threads';
import { encodeBlocks, type EncodeJob } from './encoder.js';

parentPort?.on('message', (j: EncodeJob) => parentPort?.postMessage(encodeBlocks(j)));
