import type { MessagePort } from 'node:worker_threads';
import type { Algo, Kernels } from '@ringwire/common';
import {
  AbortedError,
  createLogger,
  DEFAULTS,
  DTYPES,
  type DType,
  ErrorCode,
  escapeLog,
  type Logger,
  logs,
  PeerLostError,
  RingwireError,
} from '@ringwire/common';
import { type AbortEvent, type Collective, RendezvousClient, type Untrusted } from '@ringwire/rendezvous';
import { allgather } from './algorithms/allgather.js';
import { chainBroadcast, treeBroadcast } from './algorithms/broadcast.js';
import { chooseAllreduce } from './algorithms/choose.js';
import { byPosition, type OpContext, segments, subgroup } from './algorithms/context.js';
import {
  hierarchicalAllgather,
  hierarchicalAllreduce,
  hierarchicalReduceScatter,
} from './algorithms/hierarchical.js';
import { ringAllreduce, ringReduceScatter } from './algorithms/ring.js';
import { Topology } from './algorithms/topology.js';
import { treeAllreduce } from './algorithms/tree.js';
import { type ClockOffset, clockUs, measureOffset } from './clock.js';
import { COUNTERS_KEY } from './counters.js';
import { loadKernels } from './kernels/index.js';
import type { EngineConfig, EngineReply, OpRequest } from './messages.js';
import { EngineMetrics } from './metrics.js';
import { StallInspector } from './stall.js';
import { OpPhases, Phase, Timeline, Track } from './timeline.js';
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
  private topo = Topology.single(1);
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
  private readonly metrics = new EngineMetrics();
  private metricsTimer?: NodeJS.Timeout;
  private generation = 0;
  /** When the running op started (Date.now()). */
  private opStarted = 0;
  private suspectTimer?: NodeJS.Timeout;
  private failedNow!: () => void;
  /** The timeline's recorder and the running op's phases, when RINGWIRE_TIMELINE is on. */
  private readonly tl?: Timeline;
  private readonly phases?: OpPhases;
  private clock: ClockOffset = { offsetUs: 0, rttUs: 0 };
  private readonly pings = new Map<number, (now: number) => void>();
  /** Per rank: whether this rank's payloads to it go through shared memory. */
  private shm: boolean[] = [];
  /** How this rank reaches all its peers: 'shm', 'tcp', or 'shm+tcp' (for ops that talk to several). */
  private viaAll = 'tcp';
  /** Whether info lines print (checked once: the per-op path stays cheap). */
  private readonly info: boolean;
  /** The running op's algorithm and the peer it sends to (-1: several), for the log and timeline. */
  private opAlgo = '';
  private opPeer = -1;
  private opSmall = false;
  /** Algorithm choices already logged at info (once each). */
  private readonly logged = new Set<string>();
  /** Settles when the communicator fails. */
  private readonly failed = new Promise<void>((resolve) => (this.failedNow = resolve));

  constructor(
    private readonly cfg: EngineConfig,
    private readonly port: MessagePort,
    private readonly signal: Int32Array,
  ) {
    this.log = createLogger(`[ringwire ${cfg.rank ?? '?'}]`, cfg.logLevel);
    if (cfg.timeline) (this.tl = new Timeline()), (this.phases = new OpPhases());
    this.info = logs('info', cfg.logLevel);
    port.on('message', (m: { t: string; ms?: number } & Partial<OpRequest>) =>
      m.t === 'op'
        ? this.submit(m as OpRequest)
        : m.t === 'close'
          ? void this.close()
          : m.t === 'step'
            ? this.metrics.step(m.ms!)
            : undefined,
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
      this.rdzv.on('membership', ({ generation, waiting }) =>
        this.post({ t: 'membership', generation, waiting }),
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
        elastic: cfg.elastic,
        workerId: cfg.workerId,
      });
      this.rank = table.rank;
      this.size = table.size;
      this.topo = new Topology(Object.values(table.hosts));
      this.generation = table.generation;
      this.stall = new StallInspector({
        t: transport,
        rank: this.rank,
        size: this.size,
        timeoutMs: cfg.timeoutMs,
        stallWarningMs: cfg.stallWarningMs,
        log: this.log,
        failed: () => this.failure !== undefined,
        stalled: (ranks, text) => this.metrics.stalled(ranks, text),
      });
      transport.on('control', (from, msg) => this.onControl(from, msg));
      transport.on('lost', (from: number, reason: string) => this.onLost(from, reason));
      transport.on('protocol', (_from: number, err: RingwireError) => this.fail(err, true));
      await transport.connect(table);
      if (cfg.metricsIntervalMs > 0)
        this.metricsTimer = setInterval(() => this.sendMetrics(), cfg.metricsIntervalMs).unref();
      const me = table.peers[table.rank];
      const shared = transport.sharedPeers();
      this.shm = Array.from({ length: this.size }, (_, r) => shared.includes(r));
      const others = this.shm.filter((_, r) => r !== this.rank);
      this.viaAll = others.every(Boolean) ? 'shm' : others.some(Boolean) ? 'shm+tcp' : 'tcp';
      this.log(
        'info',
        `joined job ${cfg.jobId} generation ${table.generation} as rank ${this.rank} of ${this.size} (${host}:${port}, ${this.k.name} kernels)`,
      );
      for (let r = 0; r < this.size; r++)
        if (r !== this.rank)
          this.log(
            'info',
            `to rank ${r} (${escapeLog(table.peers[r].host)}): ${this.shm[r] ? 'shared memory' : 'TCP'}`,
          );
      if (this.tl && this.rank !== 0 && this.size > 1) await this.syncClock();
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
        sharedMemoryPeers: shared,
        clockOffsetUs: this.clock.offsetUs,
        clockRttUs: this.clock.rttUs,
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
    if (this.tl) op.arrived = performance.now();
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
      this.opStarted = Date.now();
      try {
        const t0 = performance.now();
        this.phases?.reset();
        const result = await this.stall.watch(op, () => this.execute(op));
        const t1 = performance.now();
        this.metrics.op(
          op.desc.kind as Collective,
          op.narrow ? op.byteLength / 2 : op.byteLength,
          (t1 - t0) * 1e3,
          this.size,
        );
        this.account(op, t0, t1);
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
      stats: this.metrics,
      phases: this.phases,
    };
    const ph = this.phases;
    const mine = new Uint8Array(op.buf, op.byteOffset, op.byteLength);
    // A narrowed op reduces a float16/bfloat16 copy of the caller's float32, then widens it back.
    if (op.narrow) ph?.mark(Phase.copy);
    const buf = op.narrow ? this.narrowed(mine, desc.dtype) : mine;
    const n = this.size;
    // Flat algorithms visit the ranks host by host.
    const flat = this.topo.identity ? ctx : subgroup(ctx, this.topo.order);
    const small = buf.length < this.cfg.crossoverBytes;
    this.opSmall = small;
    const algo =
      desc.kind === 'allreduce'
        ? chooseAllreduce(op.algo, buf.length, this.topo, this.cfg.crossoverBytes)
        : op.algo === 'auto'
          ? small
            ? 'tree'
            : 'ring'
          : op.algo;
    // The next rank of the host-ordered ring: whose link the timeline labels (shm or TCP).
    const order = this.topo.order;
    const next = order[(order.indexOf(this.rank) + 1) % n];
    const ring = desc.kind === 'reducescatter' || desc.kind === 'allgather';
    const chain = desc.kind === 'broadcast' && !(op.algo === 'auto' ? small : op.algo === 'tree');
    this.opAlgo = desc.kind === 'allreduce' ? algo : ring ? 'ring' : chain ? 'chain' : 'tree';
    this.opPeer = ring || chain || (desc.kind === 'allreduce' && algo === 'ring') ? next : -1;
    ph?.wait(
      desc.kind === 'allreduce' && algo !== 'tree'
        ? Phase.reduceScatter
        : desc.kind === 'reducescatter'
          ? Phase.reduceScatter
          : desc.kind === 'allgather'
            ? Phase.allGather
            : desc.kind === 'broadcast'
              ? Phase.broadcast
              : Phase.tree,
    );
    if (desc.kind === 'broadcast' && desc.root === this.rank) ph?.arrived(); // the root waits for no one
    switch (desc.kind) {
      case 'allreduce': {
        if (n > 1 && algo === 'tree') await treeAllreduce(flat, buf, this.scratchOf(buf.length));
        else if (n > 1 && algo === 'hierarchical') await hierarchicalAllreduce(ctx, buf, this.topo);
        else if (n > 1) await ringAllreduce(flat, buf);
        if (op.narrow) ph?.mark(Phase.copy);
        if (op.narrow && desc.dtype === 'float16') this.k.f16ToF32(buf, mine);
        else if (op.narrow) this.k.bf16ToF32(buf, mine);
        return n > 1 ? { algo } : {};
      }
      case 'barrier':
        if (n > 1) await treeAllreduce(flat, buf, this.scratchOf(0));
        return {};
      case 'broadcast': {
        // A chain in host order already carries the data over each host link once: no two-level form pays.
        const tree = op.algo === 'auto' ? small : op.algo === 'tree';
        if (n > 1) await (tree ? treeBroadcast : chainBroadcast)(flat, buf, desc.root);
        return n > 1 ? { algo: tree ? 'tree' : 'chain' } : {};
      }
      case 'reducescatter': {
        const segs = segments(desc.count, n, ctx.elem);
        const two = n > 1 && this.twoLevel(op.algo, buf.length);
        if (two) {
          this.opAlgo = 'hierarchical';
          await hierarchicalReduceScatter(ctx, buf, segs, this.topo);
        } else if (n > 1) await ringReduceScatter(flat, buf, byPosition(flat, segs));
        const [off, len] = segs[this.rank];
        if (desc.op === 'mean') this.k.scale(desc.dtype, buf.subarray(off, off + len), 1 / n);
        return { range: [off, len], ...(n > 1 ? { algo: two ? 'hierarchical' : 'ring' } : {}) };
      }
      case 'allgather': {
        // The result gets an ordinary buffer that is transferred to the caller's thread: owned
        // there alone, it is freed like any array (a SharedArrayBuffer per call was freed so
        // late that 20 calls of 128 MiB reached 1.9 GiB RSS).
        const into = op.out;
        let two = false;
        const { out, segs } = await allgather(
          flat,
          buf,
          into ? into.byteLength : -1,
          (bytes) => (into ? new Uint8Array(into.buf, into.byteOffset, bytes) : new Uint8Array(bytes)),
          (total) => {
            two = n > 1 && this.twoLevel(op.algo, total);
            if (!two) return undefined;
            this.opAlgo = 'hierarchical';
            return (o, s, first) => hierarchicalAllgather(ctx, o, s, this.topo, first);
          },
        );
        return {
          out: into ? undefined : (out.buffer as ArrayBuffer),
          segs: segs.map(([o, l]) => [o, l]),
          ...(n > 1 ? { algo: two ? 'hierarchical' : 'ring' } : {}),
        };
      }
      default:
        throw new AbortedError(`unknown collective ${desc.kind}`);
    }
  }

  /** Counts a completed op, logs it at debug (its choice once at info), records it in the timeline. */
  private account(op: OpRequest, t0: number, t1: number): void {
    const { desc } = op;
    const via = this.opPeer >= 0 ? (this.shm[this.opPeer] ? 'shm' : 'tcp') : this.viaAll;
    if (this.info && this.size > 1) {
      const what = `${desc.kind} ${desc.dtype} of ${this.opSmall ? 'under' : 'at least'} ${this.cfg.crossoverBytes} B: ${this.opAlgo} over ${via}`;
      if (!this.logged.has(what)) this.logged.add(what), this.log('info', what);
      this.log(
        'debug',
        `op #${op.seq} ${desc.kind} ${op.byteLength} B ${desc.dtype} ${desc.op}: ${this.opAlgo} over ${via}, ${(t1 - t0).toFixed(3)} ms`,
      );
    }
    const tl = this.tl;
    if (!tl) return;
    const transport = tl.id(via);
    tl.span(
      Track.engine,
      tl.id(desc.kind),
      t0,
      t1,
      op.seq,
      op.byteLength,
      tl.id(desc.dtype),
      tl.id(desc.op),
      tl.id(this.opAlgo),
      transport,
    );
    this.phases!.flush(tl, t1, op.seq, transport);
    // In the caller's async track of this op (same id), inside its time in the engine.
    if (op.arrived !== undefined && t0 > op.arrived)
      tl.span(Track.caller, Phase.queued, op.arrived, t0, op.seq);
  }

  /** Measures this rank's clock offset against rank 0's with ping-pongs on the control channel. */
  private async syncClock(): Promise<void> {
    let id = 0;
    const ping = () =>
      new Promise<number>((resolve) => {
        this.pings.set(++id, resolve);
        this.t.control(0, { t: 'clock?', id });
      });
    const got = await measureOffset(ping, DEFAULTS.clockSamples, DEFAULTS.clockSyncTimeoutMs);
    this.pings.clear();
    if (got) this.clock = got;
    else this.log('warn', 'timeline: rank 0 did not answer the clock pings; this rank is not aligned');
    this.log(
      'debug',
      `timeline: clock offset to rank 0 ${this.clock.offsetUs.toFixed(1)} us, rtt ${this.clock.rttUs.toFixed(1)} us`,
    );
  }

  /**
   * Whether a reduce-scatter or all-gather of `bytes` runs two-level: where all-reduce would
   * (forced, or chosen by the cost model), as both move the same share of the data across hosts.
   */
  private twoLevel(algo: Algo, bytes: number): boolean {
    return chooseAllreduce(algo, bytes, this.topo, this.cfg.crossoverBytes) === 'hierarchical';
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
      case 'clock?':
        return this.t.control(from, { t: 'clock', id: Number(msg.id), now: clockUs() });
      case 'clock': {
        const answer = this.pings.get(Number(msg.id));
        this.pings.delete(Number(msg.id));
        return answer?.(Number(msg.now));
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
    this.metrics.lost();
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
    // An elastic job re-forms after a lost peer: not an error of this worker (ringrun reports generations).
    this.log(this.cfg.elastic && err.code === ErrorCode.PEER_LOST ? 'info' : 'error', err.message);
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
    this.sendMetrics();
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
    // For ringrun's end-of-job summary: through the rendezvous, not the worker's output, which the
    // program owns (it may redirect or close stderr); a rendezvous without ringrun just keeps it.
    if (!this.failure && this.rank >= 0)
      await this.rdzv?.set(`${COUNTERS_KEY}${this.rank}`, this.metrics.values(this.rank)).catch(() => {});
    await this.shutdown();
  }

  /** Sends the counters to the rendezvous (see DEFAULTS.metricsIntervalMs). */
  private sendMetrics(): void {
    if (!this.rdzv || this.cfg.metricsIntervalMs === 0) return;
    const op = this.running;
    const running = op
      ? {
          seq: op.seq,
          collective: op.desc.kind as Collective, // 'counts' is a frame kind, never an op's
          bytes: op.byteLength,
          ms: Date.now() - this.opStarted,
        }
      : null;
    const error = this.failure ? { code: this.failure.code, message: this.failure.message } : null;
    this.rdzv.sendMetrics(this.metrics.take(this.generation, running, error));
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    clearInterval(this.metricsTimer);
    this.sendMetrics();
    await this.rdzv?.close().catch(() => {});
    await this.t?.close().catch(() => {});
    this.post({ t: 'closed', timeline: this.tl?.export() });
    this.port.close();
  }
}
