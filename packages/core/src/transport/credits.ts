import { ProtocolError } from '@ringwire/common';

/**
 * Flow control towards one peer: a sender may have `limit` frames in flight, and the receiver
 * returns one credit per frame it has consumed. `send()` returns before the peer has the data, so
 * without credits a fast sender would queue without bound (DESIGN.md, WebSocket specifics).
 */
export class Credits {
  private available: number;
  private readonly waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(private readonly limit: number) {
    this.available = limit;
  }

  /** Takes one credit, waiting for the peer to return one when none is left. */
  take(): Promise<void> | undefined {
    if (this.available > 0) {
      this.available--;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The peer returned `n` credits; a peer returning more than it was ever given breaks the protocol. */
  grant(n: number): void {
    this.available += n;
    if (this.available > this.limit) throw new ProtocolError('more credit than was ever granted');
    while (this.available > 0 && this.waiters.length) this.available--, this.waiters.shift()!.resolve();
  }

  /** Fails every sender waiting for credit. */
  fail(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
