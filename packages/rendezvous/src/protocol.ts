import { createHmac, timingSafeEqual } from 'node:crypto';
import { Packr } from 'msgpackr';
import { ProtocolError } from './errors.js';

/**
 * The rendezvous protocol: msgpack maps over one WebSocket per worker. `useRecords: false` keeps
 * every message a plain map any msgpack reader understands. Tensors never travel here.
 *
 *   server -> client  { t: 'challenge', nonce }                 on connect
 *   client -> server  { t: 'hello', job, proof }                proof = HMAC-SHA256(token, nonce|job)
 *   server -> client  { t: 'welcome' }                          or the socket is closed
 *   client -> server  { t: 'req', id, op, ...args }             ops below
 *   server -> client  { t: 'res', id, ok, value?, error? }
 *   server -> client  { t: 'abort', rank, reason, code }        pushed to every member of the job
 *   client -> server  { t: 'hb' }                               heartbeat
 */
export const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: true });

export function encode(msg: object): Buffer {
  return packr.pack(msg);
}

/** Decodes one control message; anything that is not a map with a string `t` is a protocol error. */
export function decode(data: Buffer | ArrayBuffer | Buffer[]): Record<string, unknown> & { t: string } {
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
  return msg as Record<string, unknown> & { t: string };
}

/** Proof that a connection holds the job token, bound to the server's nonce and the job id. */
export function proof(token: string, nonce: Uint8Array, job: string): Buffer {
  return createHmac('sha256', token).update(nonce).update('|').update(job).digest();
}

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
}
