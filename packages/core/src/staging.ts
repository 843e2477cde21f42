import { DEFAULTS } from '@ringwire/rendezvous';

/** A staging buffer larger than DEFAULTS.stagingKeepBytes is kept only this long after its op. */
export const LARGE_STAGING_IDLE_MS = 5_000;

/**
 * The caller thread's staging buffers, through which ordinary arrays reach the engine thread.
 * Up to DEFAULTS.stagingKeepBytes they are SharedArrayBuffers kept for reuse (repeated ops of
 * the same size allocate nothing), at most that many bytes and 4 buffers in all. A larger one is
 * an ordinary ArrayBuffer, moved to the engine and back (see OpRequest), kept for the next large
 * op only until LARGE_STAGING_IDLE_MS pass without one. Owned by one thread at a time, it is
 * freed by this thread's next garbage collection once dropped; a SharedArrayBuffer would wait
 * for both threads to collect it, and an idle engine thread may never do so.
 */
export class StagingPool {
  private readonly kept: SharedArrayBuffer[] = [];
  private large?: ArrayBuffer;
  private idle?: NodeJS.Timeout;

  constructor(private readonly keepBytes: number = DEFAULTS.stagingKeepBytes) {}

  /** A buffer of at least `bytes`: the smallest kept one that fits, or a new one. */
  take(bytes: number): SharedArrayBuffer | ArrayBuffer {
    if (bytes > this.keepBytes) {
      const large = this.large;
      if (!large || large.byteLength < bytes) return new ArrayBuffer(bytes);
      this.large = undefined;
      return large;
    }
    let best = -1;
    this.kept.forEach(
      (s, i) =>
        s.byteLength >= bytes && (best < 0 || s.byteLength < this.kept[best].byteLength) && (best = i),
    );
    if (best >= 0) return this.kept.splice(best, 1)[0];
    return new SharedArrayBuffer(Math.max(8, Math.ceil(bytes / 65536) * 65536));
  }

  /** Takes back a buffer from `take` once its op is over (a large one as the engine moved it back). */
  give(buf: SharedArrayBuffer | ArrayBuffer): void {
    if (!(buf instanceof SharedArrayBuffer)) {
      this.large = buf;
      clearTimeout(this.idle);
      this.idle = setTimeout(() => (this.large = undefined), LARGE_STAGING_IDLE_MS).unref();
      return;
    }
    // Over the limits, the smallest go first.
    this.kept.push(buf);
    this.kept.sort((a, b) => b.byteLength - a.byteLength);
    let total = this.kept.reduce((n, s) => n + s.byteLength, 0);
    while (this.kept.length > 4 || total > this.keepBytes) total -= this.kept.pop()!.byteLength;
  }
}
