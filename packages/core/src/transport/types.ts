import type { FrameHeader } from '../wire.js';

/** One data frame as an algorithm sees it: its header and its payload bytes. */
export interface Frame {
  h: FrameHeader;
  payload: Uint8Array;
}

/**
 * Where a receiving connection puts a frame's payload: a view of the op's own buffer (the bytes
 * land in place), or undefined to keep it in the connection's slot until `recv` hands it over.
 */
export type Placer = (h: FrameHeader) => Uint8Array | undefined;

/**
 * What the algorithms need from a transport, and all they may use (as Gloo's algorithms see only
 * its transport interface). `Transport` (peers.ts) implements it over WebSockets and shared
 * memory; tests implement it in memory. Frames from one peer arrive in order.
 */
export interface CollectiveTransport {
  /** The membership generation; every frame carries it. */
  readonly generation: number;
  /**
   * Sends one frame to `peer` once it has credit. Resolves when the frame is queued, with
   * `written`, which settles once `payload` may be reused.
   */
  send(peer: number, h: FrameHeader, payload: Uint8Array): Promise<{ written: Promise<void> }>;
  /** The next frame from `peer`. Call `release(peer)` once its payload has been consumed. */
  recv(peer: number): Promise<Frame>;
  /** Returns one frame's credit to `peer`. */
  release(peer: number): void;
  /** Frames from `peer` land where `placer` says; undefined stops it. */
  place(peer: number, placer: Placer | undefined): void;
}
