export {
  type AbortEvent,
  type JoinResult,
  RendezvousClient,
  type RendezvousClientOptions,
} from './client.js';
export { DEFAULTS, envNumber } from './defaults.js';
export * from './errors.js';
export { createLogger, isLoopback, type Logger, type LogLevel } from './log.js';
export type { JoinRequest, PeerInfo, PeerTable } from './protocol.js';
export { decode, encode, proof, proofMatches } from './protocol.js';
export { RendezvousServer, type RendezvousServerOptions } from './server.js';
