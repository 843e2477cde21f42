import { createHmac, timingSafeEqual } from 'node:crypto';
import { ProtocolError } from '@ringwire/common';
import { Packr } from 'msgpackr';

/**
 * The rendezvous protocol: msgpack maps over one WebSocket per worker. `useRecords: false` keeps
 * every message a plain map any msgpack reader understands. Tensors never travel here. Every
 * message either side may send is a member of the unions below; a receiver still checks each
 * field, since the bytes come from the network.
 *
 *   server -> client  challenge, then welcome (or the socket is closed); res to each req; abort;
 *                     membership (elastic jobs: workers wait to join the next generation)
 *   client -> server  hello (proof = HMAC-SHA256(credential, nonce|job)), req, hb (heartbeat),
 *                     metrics (a member's counters, every DEFAULTS.metricsIntervalMs; no answer)
 *
 * The credential is the job's own: jobCredential(secret, job), derived from the server's secret,
 * so that it proves nothing for any other job (the server still accepts its secret itself, for
 * deployments that hand it to workers; see server.ts).
 *
 * A member whose connection dropped reconnects, says hello again, and sends `rejoin` before any
 * other request: the same rank, size, generation and address it joined with. A restarted server
 * rebuilds a formed job's membership from these.
 */
export const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: true });

/** The requests a member may make (`req.op`) and their arguments. */
export type Request =
  | ({ op: 'join' } & JoinRequest)
  | ({ op: 'rejoin' } & RejoinRequest)
  | { op: 'leave' }
  | { op: 'set'; key: string; value: unknown }
  | { op: 'get'; key: string; wait: boolean; timeoutMs: number }
  | { op: 'add'; key: string; delta: number }
  | { op: 'cas'; key: string; expected: unknown; value: unknown }
  | { op: 'del'; key: string }
  | { op: 'barrier'; name: string; timeoutMs: number }
  | { op: 'report'; reason: string; rank?: number; code: string };
export type RequestOp = Request['op'];

/** What a client sends. */
export type ClientMessage =
  | { t: 'hello'; job: string; proof: Uint8Array }
  | ({ t: 'req'; id: number } & Request)
  | { t: 'hb' }
  | ({ t: 'metrics' } & MetricsReport);

/** What the server sends. */
export type ServerMessage =
  | { t: 'challenge'; nonce: Uint8Array }
  | { t: 'welcome' }
  | { t: 'res'; id: number; ok: true; value: unknown }
  | { t: 'res'; id: number; ok: false; error: { code: string; message: string; rank?: number } }
  | { t: 'abort'; rank: number; reason: string; code: string }
  | { t: 'membership'; generation: number; waiting: number };

/** A decoded message: a map with a string `t`, its other fields unchecked. */
export type Untrusted = Record<string, unknown> & { t: string };

/** Encodes one control message (rendezvous or peer: both use this codec). */
export function encode<M extends { t: string }>(msg: M): Buffer {
  return packr.pack(msg);
}

/** Decodes one control message; anything that is not a map with a string `t` is a protocol error. */
export function decode(data: Buffer | ArrayBuffer | Buffer[]): Untrusted {
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  let msg: unknown;
  try {
    msg = packr.unpack(buf);
  } catch (err) {
    throw new ProtocolError(`malformed control message (${(err as Error).message})`);
  }
  if (
    msg === null ||
    typeof msg !== 'object' ||
    Array.isArray(msg) ||
    typeof (msg as { t?: unknown }).t !== 'string'
  ) {
    throw new ProtocolError('control message is not a map with a type');
  }
  return msg as Untrusted;
}

/** Proof that a connection holds the job token, bound to the server's nonce and the job id. */
export function proof(token: string, nonce: Uint8Array, job: string): Buffer {
  return createHmac('sha256', token).update(nonce).update('|').update(job).digest();
}

/**
 * A job's credential: HMAC-SHA256(secret, "ringwire-job:" + job) as hex. Derived, so the server
 * stores nothing per job; `ringwire-rendezvous token --job ID` prints it.
 */
export function jobCredential(secret: string, job: string): string {
  return createHmac('sha256', secret).update(`ringwire-job:${job}`).digest('hex');
}

/** Whether `proof` (from the hello) was made with `token` for this nonce and job; constant time. */
export function proofMatches(token: string, nonce: Uint8Array, job: string, given: unknown): boolean {
  if (!(given instanceof Uint8Array) || given.length !== 32) return false;
  return timingSafeEqual(proof(token, nonce, job), given);
}

/** One member's entry in the peer table. */
export interface PeerInfo {
  rank: number;
  host: string;
  port: number;
  localRank: number;
  localSize: number;
  /** Elastic jobs: the worker's stable identity (RINGWIRE_WORKER_ID), which survives renumbering. */
  workerId?: string;
}

/** What every member of a job receives once the job is complete; identical on every rank. */
export interface PeerTable {
  job: string;
  generation: number;
  size: number;
  /** Indexed by rank. */
  peers: PeerInfo[];
  /** Host name -> ranks on it, hosts in order of their lowest rank. */
  hosts: Record<string, number[]>;
}

export interface JoinRequest {
  rank?: number;
  size: number;
  host: string;
  port: number;
  localRank?: number;
  timeoutMs?: number;
  /**
   * This worker's liveness bound (its RINGWIRE_HEARTBEAT_TIMEOUT_MS rule): the server declares it
   * lost only after the longer of this and its own heartbeat timeout.
   */
  heartbeatTimeoutMs?: number;
  /**
   * An elastic job: ranks are not requested but numbered densely per generation, and a member may
   * `join` again (for the next generation) after its generation failed or changed. `settleMs`:
   * how long after the last membership change a generation forms (default: the server's).
   */
  elastic?: ElasticBounds;
  /** A stable identity of this worker across generations (elastic jobs; default host:port). */
  workerId?: string;
}

/** An elastic job's bounds on its size. */
export interface ElasticBounds {
  min: number;
  max: number;
  settleMs?: number;
}

/** A member of a formed job registering again after its connection to the rendezvous dropped. */
export interface RejoinRequest {
  rank: number;
  size: number;
  generation: number;
  host: string;
  port: number;
  localRank: number;
  /** Elastic members say so again, so that a restarted server knows the job is elastic. */
  elastic?: ElasticBounds;
  workerId?: string;
}

/** The collectives a metrics report counts, by name. */
export const COLLECTIVES = ['allreduce', 'allgather', 'reducescatter', 'broadcast', 'barrier'] as const;
export type Collective = (typeof COLLECTIVES)[number];

/**
 * One member's counters (the `metrics` message). Totals are cumulative since its communicator
 * started (a lost report loses nothing); samples and steps are those since the previous report.
 */
export interface MetricsReport {
  generation: number;
  /** Operations and payload bytes (this rank's buffer, as the collective carries it) per collective. */
  ops: Partial<Record<Collective, number>>;
  bytes: Partial<Record<Collective, number>>;
  /** [collective, bytes, microseconds] of ops since the last report, at most DEFAULTS.metricsMaxSamples. */
  samples: [Collective, number, number][];
  /** Step times in ms since the last report (`Communicator.recordStep`). */
  steps: number[];
  /** Stall warnings and peers lost, cumulative. */
  stalls: number;
  lostPeers: number;
  /** The latest stall warning: the ranks that had not arrived, in words too. */
  stall: { ranks: number[]; text: string; at: number } | null;
  /** The collective running now and for how long. */
  running: { seq: number; collective: Collective; bytes: number; ms: number } | null;
  /** The error this rank failed with. */
  error: { code: string; message: string } | null;
}
