export { RendezvousServer, type RendezvousServerOptions } from './server.js';
export { RendezvousClient, type RendezvousClientOptions, type AbortEvent, type JoinResult } from './client.js';
export type { PeerInfo, PeerTable, JoinRequest } from './protocol.js';
export { proof, proofMatches, encode, decode } from './protocol.js';
export * from './errors.js';
export { DEFAULTS, envNumber } from './defaults.js';
export { createLogger, isLoopback, type Logger, type LogLevel } from './log.js';
