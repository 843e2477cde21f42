// Helpers for ringwire's multi-process tests: real processes, bounded waits, guaranteed cleanup.

export {
  capAttack,
  disconnect,
  memoryAttack,
  partialMessages,
  rssMB,
  slowConnections,
  until,
} from './attack.js';
export { eventually } from './poll.js';
export {
  alive,
  allGone,
  jsonEvents,
  killAll,
  type Proc,
  sleep,
  spawnNode,
  spawnProc,
  waitForJson,
} from './procs.js';
export {
  type Check,
  type ErrorEvent,
  finish,
  type JobResult,
  type RanksOptions,
  startRanks,
  startRendezvous,
  type TestRendezvous,
  TOKEN,
} from './ranks.js';
export { freePort, RENDEZVOUS_CLI, sigkill, startStandalone } from './standalone.js';
