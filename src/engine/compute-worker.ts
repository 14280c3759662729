/** A compute worker (see compute.ts): takes blocks of each posted chunk, answers when none are left. */
import { parentPort, workerData } from 'node:worker_threads';
import { computeBlocks, type ChunkJob, type WorkerInit } from './compute.js';

const { memory } = workerData as WorkerInit;
parentPort?.on('message', (job: ChunkJob) => parentPort?.postMessage(computeBlocks(job, memory)));
