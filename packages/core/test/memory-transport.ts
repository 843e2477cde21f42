import type { CollectiveTransport, Frame, Placer } from '../src/transport/types.js';
import type { FrameHeader } from '../src/wire.js';

/** One direction between two ranks: what the sender may still send, and what waits at the receiver. */
class Link {
  /** Frames the sender may still send before a release (the real transport's credit). */
  credits: number;
  readonly creditWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Sent, not yet arrived; one pump moves them in order. */
  readonly wire: { h: FrameHeader; payload: Uint8Array; written: () => void }[] = [];
  pumping = false;
  /** Arrived, not yet taken by recv. */
  readonly arrived: Frame[] = [];
  recvWaiter?: { resolve: (f: Frame) => void; reject: (e: Error) => void };
  placer?: Placer;
  /** Receive slots, reused round-robin as the real connection's are: a payload lives until released. */
  readonly slots: Buffer[];
  head = 0;
  released = 0;

  constructor(readonly credit: number) {
    this.credits = credit;
    this.slots = Array.from({ length: credit }, () => Buffer.alloc(0));
  }
}

/**
 * N ranks of one job in this process, joined by in-memory links that behave like the real
 * transport where the algorithms can tell: frames from one peer arrive in order, a sender waits
 * for credit after `credits` unreleased frames, a frame arrives later than it was sent (a macrotask
 * later), lands where the receiver's placer says at arrival or else in a slot that the next frame
 * but `credits` reuses, and `written` settles only once the payload has been copied out.
 */
export class MemoryNetwork {
  /** links[from][to] */
  private readonly links: Link[][];
  private failure?: Error;

  constructor(
    readonly size: number,
    readonly credits = 4,
    readonly generation = 1,
  ) {
    this.links = Array.from({ length: size }, () => Array.from({ length: size }, () => new Link(credits)));
  }

  /** Rank `rank`'s view of the network, as an algorithm sees its transport. */
  transport(rank: number): CollectiveTransport {
    return {
      generation: this.generation,
      send: (peer, h, payload) => this.send(rank, peer, h, payload),
      recv: (peer) => this.recv(peer, rank),
      release: (peer) => this.release(peer, rank),
      place: (peer, placer) => {
        // The real transport ignores a peer it has no connection from: a ring of one places on itself.
        if (peer !== rank) this.link(peer, rank).placer = placer;
      },
    };
  }

  /** Fails every rank's pending and later calls, as a lost peer does (ends a run that would hang). */
  fail(err: Error): void {
    this.failure ??= err;
    for (const l of this.links.flat()) {
      for (const w of l.creditWaiters.splice(0)) w.reject(err);
      l.recvWaiter?.reject(err);
      l.recvWaiter = undefined;
    }
  }

  /**
   * Problems left once every rank's op has finished: frames sent but never received or
   * released, or credit not returned. Waits for frames still on the wire first.
   */
  async leftovers(): Promise<string[]> {
    await new Promise((r) => setImmediate(r));
    const out: string[] = [];
    this.links.forEach((row, from) =>
      row.forEach((l, to) => {
        const unreleased = l.head - l.released;
        if (l.wire.length || l.arrived.length || unreleased || l.credits !== l.credit)
          out.push(
            `${from}->${to}: ${l.wire.length + l.arrived.length} frame(s) not received, ` +
              `${unreleased} not released, ${l.credits} of ${l.credit} credits`,
          );
        if (l.placer) out.push(`${from}->${to}: placer left set`);
      }),
    );
    return out;
  }

  private link(from: number, to: number): Link {
    if (!Number.isInteger(to) || to < 0 || to >= this.size || to === from)
      throw new Error(`rank ${from} addressed rank ${to} (size ${this.size})`);
    return this.links[from][to];
  }

  private async send(
    from: number,
    to: number,
    h: FrameHeader,
    payload: Uint8Array,
  ): Promise<{ written: Promise<void> }> {
    const l = this.link(from, to);
    if (this.failure) throw this.failure;
    if (payload.length !== h.length)
      throw new Error(`header says ${h.length} bytes, payload has ${payload.length}`);
    if (l.credits > 0) l.credits--;
    else await new Promise<void>((resolve, reject) => l.creditWaiters.push({ resolve, reject }));
    let written!: () => void;
    const done = new Promise<void>((resolve) => (written = resolve));
    l.wire.push({ h, payload, written });
    if (!l.pumping) {
      l.pumping = true;
      setImmediate(() => this.arrive(l));
    }
    return { written: done };
  }

  /** Frames on the wire reach the receiver in order; each payload is copied out of the sender's buffer now. */
  private arrive(l: Link): void {
    l.pumping = false;
    for (const { h, payload, written } of l.wire.splice(0)) {
      if (l.head - l.released >= l.credit) return this.fail(new Error('a frame arrived beyond its credit'));
      const placed = l.placer?.(h);
      let dst: Buffer;
      if (placed?.length === h.length) dst = Buffer.from(placed.buffer, placed.byteOffset, placed.byteLength);
      else {
        const i = l.head % l.credit;
        if (l.slots[i].length < h.length) l.slots[i] = Buffer.alloc(h.length);
        dst = l.slots[i].subarray(0, h.length);
      }
      l.head++;
      dst.set(payload);
      written();
      const f = { h, payload: dst };
      if (l.recvWaiter) {
        const w = l.recvWaiter;
        l.recvWaiter = undefined;
        w.resolve(f);
      } else l.arrived.push(f);
    }
  }

  private recv(from: number, to: number): Promise<Frame> {
    const l = this.link(from, to);
    if (this.failure) return Promise.reject(this.failure);
    const f = l.arrived.shift();
    if (f) return Promise.resolve(f);
    if (l.recvWaiter) return Promise.reject(new Error(`rank ${to} waits twice for rank ${from}`));
    return new Promise((resolve, reject) => (l.recvWaiter = { resolve, reject }));
  }

  /** The credit goes back a macrotask later, as the real one travels back over the connection. */
  private release(from: number, to: number): void {
    const l = this.link(from, to);
    if (++l.released > l.head)
      throw new Error(`rank ${to} released more frames from rank ${from} than arrived`);
    setImmediate(() => {
      const w = l.creditWaiters.shift();
      if (w) w.resolve();
      else l.credits++;
    });
  }
}
