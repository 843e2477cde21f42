import { workerData } from 'node:worker_threads';
import { Engine } from './engine.js';

// The engine thread's entry point: see engine.ts.
await new Engine(workerData.config, workerData.port, workerData.signal).start();
