import type { MessagePort } from 'node:worker_threads';
import type { Kernels } from '@ringwire/common';
import {
  AbortedError,
  createLogger,
  DEFAULTS,
  DTYPES,
  type DType,
  ErrorCode,
  type Logger,
  PeerLostError,
  RingwireError,
} from '@ringwire/common';
import { type AbortEvent, RendezvousClient, type Untrusted } from '@ringwire/rendezvous';
import { allgather } from './algorithms/allgather.js';
import { chainBroadcast, treeBroadcast } from './algorithms/broadcast.js';
import { type OpContext, segments } from './algorithms/context.js';
import { ringAllreduce, ringReduceScatter } from './algorithms/ring.js';
import { treeAllreduce } from './algorithms/tree.js';
import { loadKernels } from './kernels/index.js';
import type { EngineConfig, EngineReply, OpRequest } from './messages.js';
import { StallInspector } from './stall.js';
import type { EngineMessage } from './transport/control.js';
import { Transport } from './transport/peers.js';
import { sharedMemoryInfo } from './transport/shared-memory.js';
import { descriptorHash } from './wire.js';

/**
 * The communication engine, one per communicator, in its own worker thread (like Horovod's
 * background thread): it owns the rendezvous connection and the peer sockets, runs collectives
 * strictly in sequence-number order, and reports back over a MessagePort. Any failure fails the
 * whole job: every rank is told, through the peers and through the rendezvous. Once joined, the
 * job does not need the rendezvous: losing it fails nothing (see RendezvousClient).
 */
export class Engine {
  private t!: Transport;
  private rdzv!: RendezvousClient;
  private readonly k: Kernels = loadKernels();
  private readonly log: Logger;
  private rank = -1;
  private size = 0;
  private readonly queue = new Map<number, OpRequest>();
  private nextSeq = 1;
  private submitted = 0;
  private running?: OpRequest;
  private failure?: RingwireError;
  /** Whether some op has already been rejected with `failure` itself. */
  private told = false;
  private closing = false;
  private scratch = new Uint8Array(0);
  private half = new Uint8Array(0);
  private stall!: StallInspector;
  private suspectTimer?: NodeJS.Timeout;
  private failedNow!: () => void;
  /** Settles when the communicator fails. */
  private readonly failed = new Promise<void>((resolve) => (this.failedNow = resolve));

  constructor(
    private readonly cfg: EngineConfig,
    private readonly port: MessagePort,
    private readonly signal: Int32Array,
  ) {
    this.log = createLogger(`[ringwire ${cfg.rank ?? '?'}]`, cfg.logLevel);
    port.on('message', (m: { t: string } & Partial<OpRequest>) =>
      m.t === 'op' ? this.submit(m as OpRequest) : m.t === 'close' ? void this.close() : undefined,
    );
  }

  private post(msg: EngineReply): void {
    this.port.postMessage(msg, msg.t === 'done' ? [msg.out, msg.buf].filter((b) => b !== undefined) : []);
    Atomics.add(this.signal, 0, 1);
    Atomics.notify(this.signal, 0);
  }

  async start(): Promise<void> {
    const { cfg } = this;
    try {
      this.rdzv = await RendezvousClient.connect({
        url: cfg.rendezvous,
        job: cfg.jobId,
        token: cfg.token,
        connectTimeoutMs: cfg.connectTimeoutMs,
        heartbeatIntervalMs: Math.min(DEFAULTS.heartbeatIntervalMs, Math.floor(cfg.heartbeatTimeoutMs / 4)),
        tls: cfg.tls,
      });
      // Advertise the address this host uses to reach the rendezvous: the peers can reach it too.
      const host = cfg.host ?? this.rdzv.localAddress;
      const { transport, port } = await Transport.listen(host, {
        job: cfg.jobId,
        token: cfg.token,
        chunkBytes: cfg.chunkBytes,
        credits: cfg.credits,
        connectTimeoutMs: cfg.connectTimeoutMs,
        authTimeoutMs: DEFAULTS.authTimeoutMs,
        closeTimeoutMs: DEFAULTS.closeTimeoutMs,
        log: this.log,
        sharedMemory: cfg.sharedMemory && sharedMemoryInfo().available,
        tls: cfg.tls,
      });
      this.t = transport;
      this.rdzv.on('abort', (a: AbortEvent) =>
        this.fail(RingwireError.fromJSON({ code: a.code, message: a.reason, rank: a.rank }), false),
      );
      // The running job needs no rendezvous (collectives and aborts go between peers): losing it
      // is only logged; the client reconnects and re-registers by itself.
      this.rdzv.on('disconnected', (err) =>
        this.log('warn', `${err.message}; reconnecting, the job goes on`),
      );
      this.rdzv.on('reconnected', ({ awayMs }) =>
        this.log('warn', `reconnected to the rendezvous after ${awayMs} ms and re-registered`),
      );
      this.rdzv.on('lost', (err) =>
        this.log('warn', `${err.message}; collectives go on, what needs the rendezvous fails`),
      );
      const table = await this.rdzv.join({
        rank: cfg.rank,
        size: cfg.size,
        host,
        port,
        localRank: cfg.localRank,
        timeoutMs: cfg.joinTimeoutMs,
        heartbeatTimeoutMs: cfg.heartbeatTimeoutMs,
      });
      this.rank = table.rank;
      this.size = table.size;
      this.stall = new StallInspector({
        t: transport,
        rank: this.rank,
        size: this.size,
        timeoutMs: cfg.timeoutMs,
        stallWarningMs: cfg.stallWarningMs,
        log: this.log,
        failed: () => this.failure !== undefined,
      });
      transport.on('control', (from, msg) => this.onControl(from, msg));
      transport.on('lost', (from: number, reason: string) => this.onLost(from, reason));
      transport.on('protocol', (_from: number, err: RingwireError) => this.fail(err, true));
      await transport.connect(table);
      const me = table.peers[table.rank];
      this.post({
        t: 'ready',
        rank: table.rank,
        size: table.size,
        localRank: me.localRank,
        localSize: me.localSize,
        generation: table.generation,
        host,
        port,
        kernels: this.k.name,
        sharedMemoryPeers: transport.sharedPeers(),
      });
    } catch (err) {
      const e =
        err instanceof RingwireError
          ? err
          : new AbortedError(`init failed: ${(err as Error).message}`, { cause: err });
      this.post({ t: 'init-failed', error: e.toJSON() });
      await this.shutdown();
    }
  }

  private submit(op: OpRequest): void {
    this.submitted = Math.max(this.submitted, op.seq);
    if (this.failure) return this.reject(op, this.laterError());
    this.queue.set(op.seq, op);
    void this.pump();
  }

  private async pump(): Promise<void> {
    while (!this.running && !this.failure) {
      const op = this.queue.get(this.nextSeq);
      if (!op) return;
      this.queue.delete(op.seq);
      this.nextSeq++;
      this.running = op;
      try {
        const result = await this.stall.watch(op, () => this.execute(op));
        // A transferred (ordinary) buffer goes back the way it came.
        if (!(op.buf instanceof SharedArrayBuffer)) result.buf = op.buf;
        this.post({ t: 'done', id: op.id, ...result });
      } catch (err) {
        if (err instanceof PeerLostError && !this.failure) await this.suspect(err);
        const e =
          this.failure ??
          (err instanceof RingwireError
            ? err
            : new AbortedError(`op #${op.seq} failed: ${(err as Error).stack ?? err}`));
        this.fail(e, true);
        this.reject(op, e);
      } finally {
        this.running = undefined;
        this.trim();
      }
    }
    if (this.closing && this.queue.size === 0) this.closeDone?.();
  }

  private async execute(op: OpRequest): Promise<Omit<Extract<EngineReply, { t: 'done' }>, 't' | 'id'>> {
    const desc = op.desc;
    const ctx: OpContext = {
      t: this.t,
      k: this.k,
      rank: this.rank,
      size: this.size,
      seq: op.seq,
      desc,
      hash: descriptorHash(desc),
      elem: DTYPES[desc.dtype].bytes,
      chunkBytes: this.cfg.chunkBytes,
    };
    const mine = new Uint8Array(op.buf, op.byteOffset, op.byteLength);
    // A narrowed op reduces a float16/bfloat16 copy of the caller's float32, then widens it back.
    const buf = op.narrow ? this.narrowed(mine, desc.dtype) : mine;
    const n = this.size;
    const small = buf.length < this.cfg.crossoverBytes;
    const algo = op.algo === 'auto' ? (small ? 'tree' : 'ring') : op.algo;
    switch (desc.kind) {
      case 'allreduce':
        if (n > 1 && algo === 'tree') await treeAllreduce(ctx, buf, this.scratchOf(buf.length));
        else if (n > 1) await ringAllreduce(ctx, buf);
        if (op.narrow && desc.dtype === 'float16') this.k.f16ToF32(buf, mine);
        else if (op.narrow) this.k.bf16ToF32(buf, mine);
        return n > 1 ? { algo } : {};
      case 'barrier':
        if (n > 1) await treeAllreduce(ctx, buf, this.scratchOf(0));
        return {};
      case 'broadcast':
        if (n > 1)
          await ((op.algo === 'auto' ? small : op.algo === 'tree') ? treeBroadcast : chainBroadcast)(
            ctx,
            buf,
            desc.root,
          );
        return {};
      case 'reducescatter': {
        const segs = segments(desc.count, n, ctx.elem);
        if (n > 1) await ringReduceScatter(ctx, buf, segs);
        const [off, len] = segs[this.rank];
        if (desc.op === 'mean') this.k.scale(desc.dtype, buf.subarray(off, off + len), 1 / n);
        return { range: [off, len] };
      }
      case 'allgather': {
        // The result gets an ordinary buffer that is transferred to the caller's thread: owned
        // there alone, it is freed like any array (a SharedArrayBuffer per call was freed so
        // late that 20 calls of 128 MiB reached 1.9 GiB RSS).
        const into = op.out;
        const { out, segs } = await allgather(ctx, buf, into ? into.byteLength : -1, (bytes) =>
          into ? new Uint8Array(into.buf, into.byteOffset, bytes) : new Uint8Array(bytes),
        );
        return { out: into ? undefined : (out.buffer as ArrayBuffer), segs: segs.map(([o, l]) => [o, l]) };
      }
      default:
        throw new AbortedError(`unknown collective ${desc.kind}`);
    }
  }

  /** `src` (float32) narrowed to `dtype` in a buffer reused across ops. */
  private narrowed(src: Uint8Array, dtype: DType): Uint8Array {
    const bytes = src.length / 2;
    if (this.half.length < bytes) this.half = new Uint8Array(bytes);
    const dst = this.half.subarray(0, bytes);
    if (dtype === 'float16') this.k.f32ToF16(src, dst);
    else this.k.f32ToBf16(src, dst);
    return dst;
  }

  /** Conversion and scratch buffers larger than DEFAULTS.stagingKeepBytes are not kept past their op. */
  private trim(): void {
    if (this.half.length > DEFAULTS.stagingKeepBytes) this.half = new Uint8Array(0);
    if (this.scratch.length > DEFAULTS.stagingKeepBytes) this.scratch = new Uint8Array(0);
  }

  private scratchOf(bytes: number): Uint8Array {
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(Math.max(bytes, 64 * 1024));
    return this.scratch;
  }

  private onControl(from: number, msg: Untrusted): void {
    switch (msg.t) {
      case 'status?': {
        const op = this.running;
        return this.t.control(from, {
          t: 'status',
          id: Number(msg.id),
          seq: this.submitted,
          running: op ? { seq: op.seq, desc: op.desc, hash: descriptorHash(op.desc) } : null,
        });
      }
      case 'status': {
        return this.stall.onStatus(from, msg);
      }
      case 'abort':
        return this.fail(RingwireError.fromJSON(msg as unknown as { code: string; message: string }), false);
      case 'bye':
        return this.t.markBye(from);
      default:
        this.log('warn', `rank ${from} sent an unknown control message ${String(msg.t)}`);
    }
  }

  private onLost(rank: number, reason: string): void {
    if (this.closing && !this.running && this.queue.size === 0) return;
    void this.suspect(new PeerLostError(`rank ${rank} ${reason}`, { rank }));
  }

  /**
   * A peer's connection closed, or a send to it failed. That peer may have failed because of
   * another rank and exited before its abort reached us (queued behind data it was sending), so
   * wait up to DEFAULTS.lostGraceMs for an abort naming the root cause, from a peer (or from the
   * rendezvous, when it is there); blame this peer only when none comes. Resolves once the
   * communicator has failed.
   */
  private suspect(err: PeerLostError): Promise<void> {
    if (!this.failure && !this.suspectTimer)
      this.suspectTimer = setTimeout(() => this.fail(err, true), DEFAULTS.lostGraceMs);
    return this.failed;
  }

  /**
   * Fails the communicator: the running and queued ops reject with `err`, later ones with
   * RINGWIRE_ERR_ABORTED (but see laterError). With `spread`, every peer and the rendezvous hear of it too.
   */
  private fail(err: RingwireError, spread: boolean): void {
    if (this.failure || (this.closing && !this.running && this.queue.size === 0)) return;
    this.failure = err;
    clearTimeout(this.suspectTimer);
    this.failedNow();
    this.log('error', err.message);
    this.t?.fail(err);
    for (const op of this.queue.values()) this.reject(op, err);
    this.queue.clear();
    // Peers and the rendezvous hear of it before the caller does: a caller that exits at once
    // must not take the news with it (ringrun names the root cause from the reports).
    if (spread) {
      const msg: EngineMessage = { t: 'abort', ...err.toJSON() };
      // On both connections: whichever of them a peer sees close first, the abort (naming the
      // root cause) arrives before that close, so the peer does not blame this rank instead.
      for (let r = 0; r < this.size; r++) if (r !== this.rank) this.t.control(r, msg, true);
      this.rdzv?.reportFailure(err.message, { code: err.code, rank: err.rank ?? this.rank }).catch(() => {});
    }
    this.post({ t: 'failed', error: err.toJSON() });
    if (this.closing) this.closeDone?.();
  }

  /** The failure's own error goes to the first op that meets it (the user's first catch sees the cause). */
  private laterError(): RingwireError {
    if (!this.told) return this.failure!;
    return this.failure!.code === ErrorCode.ABORTED
      ? this.failure!
      : new AbortedError(`the communicator failed earlier: ${this.failure!.message}`, {
          rank: this.failure!.rank,
        });
  }

  private reject(op: OpRequest, err: RingwireError): void {
    if (err === this.failure) this.told = true;
    this.post({ t: 'op-failed', id: op.id, error: err.toJSON() });
  }

  private closeDone?: () => void;

  /** Finishes the queued ops, says goodbye to the peers and the rendezvous, and exits. */
  private async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.running || this.queue.size) await new Promise<void>((r) => (this.closeDone = r));
    // On both connections, so whichever closes first was preceded by the bye.
    for (let r = 0; r < this.size; r++) if (r !== this.rank) this.t.control(r, { t: 'bye' }, true);
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    await this.rdzv?.close().catch(() => {});
    await this.t?.close().catch(() => {});
    this.post({ t: 'closed' });
    this.port.close();
  }
}
