import { type Logger, TimeoutError } from '@ringwire/common';
import type { Untrusted } from '@ringwire/rendezvous';
import { mismatch } from './algorithms/context.js';
import type { OpRequest } from './messages.js';
import type { PeerStatus } from './transport/control.js';
import type { Transport } from './transport/peers.js';
import { describe, descriptorHash } from './wire.js';

export interface StallInspectorOptions {
  t: Pick<Transport, 'lastProgress' | 'control'>;
  rank: number;
  size: number;
  /** No progress for this long fails the op (RINGWIRE_TIMEOUT_MS). */
  timeoutMs: number;
  /** No progress for this long logs a warning naming the ranks that have not arrived. */
  stallWarningMs: number;
  log: Logger;
  /** Whether the communicator has already failed (then status questions stop early). */
  failed: () => boolean;
  /** Told of each stall warning: the ranks that had not arrived, and the warning's words. */
  stalled?: (ranks: number[], text: string) => void;
}

/**
 * Horovod's stall inspector, for one communicator: watches the running collective, and when it
 * makes no progress asks the peers' engines where they are, to name the ranks that have not
 * arrived, to find a mismatched collective no frame could show, and to time the op out.
 */
export class StallInspector {
  private statusId = 0;
  private readonly waiters = new Map<number, Map<number, PeerStatus>>();

  constructor(private readonly o: StallInspectorOptions) {}

  /** A peer's answer to our status question. */
  onStatus(from: number, msg: Untrusted): void {
    this.waiters.get(Number(msg.id))?.set(from, {
      seq: Number(msg.seq),
      running: (msg.running as PeerStatus['running']) ?? undefined,
    });
  }

  /**
   * Runs one collective under the stall inspector. After a second without progress it asks the
   * peers which op they are in: a different collective at the same sequence number is a mismatch
   * even when no frame could show it (two ranks both waiting to receive). Without progress for
   * stallWarningMs it names the ranks that have not arrived; for timeoutMs, it fails the job.
   */
  async watch<T>(op: OpRequest, run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    const hash = descriptorHash(op.desc);
    let warned = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const every = Math.min(500, this.o.timeoutMs / 4, this.o.stallWarningMs / 2);
    const stalled = new Promise<never>((_, reject) => {
      const tick = async () => {
        const idle = Date.now() - Math.max(started, this.o.t.lastProgress);
        if (idle >= Math.min(1000, this.o.stallWarningMs)) {
          const peers = await this.peerStatus();
          // The op may have ended while we asked: a timer set now would keep the thread alive.
          if (settled) return;
          for (const [r, { running: o }] of peers)
            if (o?.seq === op.seq && o.hash !== hash)
              return reject(mismatch(this.o.rank, op.seq, op.desc, r, o.seq, o.desc));
          const late = this.late(op.seq, peers);
          if (idle >= this.o.timeoutMs) {
            return reject(
              new TimeoutError(
                `op #${op.seq} ${describe(op.desc)} made no progress for ${idle} ms (RINGWIRE_TIMEOUT_MS=${this.o.timeoutMs}); ${late.text}`,
                { ranks: late.ranks },
              ),
            );
          }
          if (idle >= this.o.stallWarningMs && !warned) {
            warned = true;
            this.o.stalled?.(late.ranks, late.text);
            this.o.log(
              'warn',
              `stall: op #${op.seq} ${describe(op.desc)} has made no progress for ${Math.round(idle / 1000)} s; ${late.text}`,
            );
          }
        }
        timer = setTimeout(tick, every);
      };
      timer = setTimeout(tick, every);
    });
    try {
      return await Promise.race([run(), stalled]);
    } finally {
      settled = true;
      clearTimeout(timer);
    }
  }

  /** Asks every peer's engine (up to 1 s) which op it has reached and which one it is running. */
  private async peerStatus(): Promise<Map<number, PeerStatus>> {
    const id = ++this.statusId;
    const replies = new Map<number, PeerStatus>();
    this.waiters.set(id, replies);
    for (let r = 0; r < this.o.size; r++) if (r !== this.o.rank) this.o.t.control(r, { t: 'status?', id });
    const deadline = Date.now() + 1000;
    while (replies.size < this.o.size - 1 && Date.now() < deadline && !this.o.failed())
      await new Promise((r) => setTimeout(r, 20));
    this.waiters.delete(id);
    return replies;
  }

  /** Ranks behind op #seq (not arrived) or silent, as a sentence for errors and warnings. */
  private late(seq: number, replies: Map<number, PeerStatus>): { ranks: number[]; text: string } {
    const late: number[] = [];
    const silent: number[] = [];
    for (let r = 0; r < this.o.size; r++) {
      if (r === this.o.rank) continue;
      const s = replies.get(r);
      if (s === undefined) silent.push(r);
      else if (s.seq < seq) late.push(r);
    }
    const parts = [];
    if (late.length)
      parts.push(
        `ranks not arrived at op #${seq}: ${late.map((r) => `${r} (at op #${replies.get(r)!.seq})`).join(', ')}`,
      );
    if (silent.length) parts.push(`ranks not answering: ${silent.join(', ')}`);
    if (!parts.length) parts.push('every rank has arrived; no data is moving');
    return { ranks: [...late, ...silent], text: parts.join('; ') };
  }
}
