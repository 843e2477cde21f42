/**
 * The shared vocabulary moved to @ringwire/common; these re-exports keep existing imports
 * working. @deprecated import errors, DEFAULTS, the logger and env parsers from
 * '@ringwire/common' (or from 'ringwire').
 */
export * from '@ringwire/common';
export {
  type AbortEvent,
  type JoinResult,
  type MembershipEvent,
  RendezvousClient,
  type RendezvousClientEvents,
  type RendezvousClientOptions,
} from './client.js';
export type { ElasticState, GenerationRecord } from './elastic.js';
export type {
  ClientMessage,
  Collective,
  ElasticBounds,
  JoinRequest,
  MetricsReport,
  PeerInfo,
  PeerTable,
  RejoinRequest,
  Request,
  RequestOp,
  ServerMessage,
  Untrusted,
} from './protocol.js';
export { COLLECTIVES, decode, encode, jobCredential, proof, proofMatches } from './protocol.js';
export { type JobStatus, RendezvousServer, type RendezvousServerOptions } from './server.js';
