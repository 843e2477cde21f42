import type { Descriptor } from '../wire.js';
import type { SharedRegion } from './shared-memory.js';

/**
 * Control messages between peers (msgpack, see @ringwire/rendezvous's codec), typed in one place
 * as the engine's thread messages are in messages.ts. Data never travels here: frames do (wire.ts).
 * Receivers still check fields: the bytes come from the network.
 *
 * Handshake, on each new connection (the listener is the sender of data):
 *   listener -> dialler  challenge
 *   dialler -> listener  hello (proof = HMAC(token, nonce|job), the dialler's own nonce)
 *   listener -> dialler  welcome (its proof; a shared-memory offer for same-host peers)
 *   dialler -> listener  shm (whether the offer was mapped; only after an offer)
 * Then, engine to engine: status? / status (the stall inspector), abort, bye, clock? / clock.
 */
export type HandshakeMessage =
  | { t: 'challenge'; nonce: Uint8Array }
  | { t: 'hello'; job: string; generation: number; rank: number; proof: Uint8Array; nonce: Uint8Array }
  | { t: 'welcome'; proof: Uint8Array; shm?: SharedRegion['offer'] }
  | { t: 'shm'; ok: boolean };

/** What a peer's engine says when asked: the last op submitted, and the one running. */
export interface PeerStatus {
  seq: number;
  running?: { seq: number; desc: Descriptor; hash: number };
}

export type EngineMessage =
  | { t: 'status?'; id: number }
  | { t: 'status'; id: number; seq: number; running: PeerStatus['running'] | null }
  | { t: 'abort'; code: string; message: string; rank?: number; ranks?: number[] }
  | { t: 'bye' }
  /** Clock alignment for the timeline (clock.ts): rank 0 answers with its clockUs(). */
  | { t: 'clock?'; id: number }
  | { t: 'clock'; id: number; now: number };

export type PeerMessage = HandshakeMessage | EngineMessage;
