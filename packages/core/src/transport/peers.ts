import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  createListener,
  ErrorCode,
  type Logger,
  PeerLostError,
  PreAuthGuard,
  ProtocolError,
  RingwireError,
  rateLimitedLogger,
  type TlsMaterial,
} from '@ringwire/common';
import { decode, encode, type PeerTable, type Untrusted } from '@ringwire/rendezvous';
import WebSocket, { WebSocketServer } from 'ws';
import { copyBytes } from '../kernels/index.js';
import { type FrameHeader, FrameType, HEADER_BYTES, isFrame, readHeader, writeHeader } from '../wire.js';
import type { EngineMessage } from './control.js';
import { Credits } from './credits.js';
import { DataSocket } from './data-socket.js';
import { acceptPeer, greetPeer } from './handshake.js';
import { createRegion, type SharedRegion, sameHost } from './shared-memory.js';
import type { CollectiveTransport, Frame, Placer } from './types.js';

export interface TransportOptions {
  job: string;
  token: string;
  /** Largest payload of one frame; every frame on the wire is bounded by it. */
  chunkBytes: number;
  /** Frames a sender may have in flight to one peer before it waits for credit. */
  credits: number;
  connectTimeoutMs: number;
  authTimeoutMs: number;
  /** How long a graceful close waits for queued data and the peer's close handshake. */
  closeTimeoutMs: number;
  /** Offer and accept shared memory with peers on this host (shared.ts). */
  sharedMemory: boolean;
  log: Logger;
  /** TLS on every peer link (mutual, against the job's CA): the listener is https, the dialler tls. */
  tls?: TlsMaterial;
}

interface Inbox {
  queue: Frame[];
  waiter?: { resolve: (f: Frame) => void; reject: (e: Error) => void };
}

interface Outbox {
  ws: WebSocket;
  /** The raw socket under `ws`: data frames are written to it directly (see send). */
  socket: Socket;
  credits: Credits;
  /** The peer maps these slots: payloads go there (frame number % credits), headers on `socket`. */
  shared?: Buffer[];
  sent: number;
}

/** How long close waits for the peers' answers once the job has failed (else closeTimeoutMs). */
const FAILED_CLOSE_MS = 500;

/** Socket reads land in one reused buffer of this size per receiving connection. */
const READ_BUFFER_BYTES = 1024 * 1024;

const CREDIT_DESC = { kind: 'barrier', dtype: 'uint8', op: 'sum', root: 0, count: 0, layout: 0 } as const;

/** Transport's events: a peer's control message, a lost peer, a peer that broke the protocol. */
export interface TransportEvents {
  control: [rank: number, msg: Untrusted];
  lost: [rank: number, reason: string];
  protocol: [rank: number, err: ProtocolError];
}

/**
 * Peer connections for one communicator. Every ordered pair (i -> j) gets its own WebSocket on
 * which i is the server: server frames are not masked, so bulk data always flows server to
 * client, and the client sends back only credits and control messages. Frames from one peer
 * arrive in order (TCP), and every rank issues collectives in the same order, so each peer's
 * frames are consumed from a FIFO and checked against what this rank expects next.
 */
export class Transport extends EventEmitter<TransportEvents> implements CollectiveTransport {
  rank = -1;
  size = 0;
  generation = 0;
  lastProgress = Date.now();
  private readonly wss: WebSocketServer;
  /** Connections on which peers' data arrives (we dialled them). */
  private readonly inbound: (DataSocket | undefined)[] = [];
  private readonly outbox: (Outbox | undefined)[] = [];
  private readonly inbox: Inbox[] = [];
  private readonly byes = new Set<number>();
  /** Peers known to be lost (connection gone without a bye, or named by the failure): close does not wait for them. */
  private readonly lost = new Set<number>();
  private failure?: RingwireError;
  private closing = false;
  private tableReady!: (t: PeerTable & { rank: number }) => void;
  private readonly table = new Promise<PeerTable & { rank: number }>((r) => (this.tableReady = r));
  private inboundDone?: () => void;
  /** Creating a shared-memory region failed once: offer no more (see tryRegion). */
  private noRegions = false;
  /** Peers whose shared memory could not be mapped (warned about once, then at debug level). */
  private unmapped = 0;
  /** Refused and dropped strangers: logged, but a flood of them only as a count. */
  private readonly refusals: Logger;
  private readonly guard: PreAuthGuard;

  private constructor(
    private readonly opts: TransportOptions,
    private readonly http: Server,
    wss: WebSocketServer,
  ) {
    super();
    this.wss = wss;
    this.refusals = rateLimitedLogger(opts.log, 'peer listener refusals');
    this.guard = new PreAuthGuard({
      dropped: (remote, why) => this.refusals('warn', `peer listener: dropping ${remote}: ${why}`),
    });
    this.guard.watch(http);
    wss.on('connection', (ws, req) => this.onInbound(ws, req.socket));
  }

  /** Opens this rank's peer listener; the port goes into the rendezvous join. */
  static async listen(host: string, opts: TransportOptions): Promise<{ transport: Transport; port: number }> {
    let transport: Transport | undefined;
    // Strangers get as long to finish their TLS handshake and HTTP request as peers get to authenticate.
    const http = createListener(
      opts.tls,
      opts.authTimeoutMs,
      (_req, res) => res.writeHead(426).end(),
      (remote, why) => transport?.refusals('warn', `peer listener: refusing ${remote}: ${why}`),
    );
    const wss = new WebSocketServer({
      server: http,
      perMessageDeflate: false,
      maxPayload: opts.chunkBytes + HEADER_BYTES + 64 * 1024,
      skipUTF8Validation: true,
    });
    await new Promise<void>(
      (resolve, reject) => (http.once('error', reject), http.listen(0, host, () => resolve())),
    );
    transport = new Transport(opts, http, wss);
    return { transport, port: (http.address() as AddressInfo).port };
  }

  /** Connects to every peer and waits until every peer has connected back. */
  async connect(table: PeerTable & { rank: number }): Promise<void> {
    this.rank = table.rank;
    this.size = table.size;
    this.generation = table.generation;
    for (let i = 0; i < this.size; i++) this.inbox.push({ queue: [] });
    const allInbound = new Promise<void>((resolve) => (this.inboundDone = resolve));
    this.tableReady(table);
    this.checkInbound();
    const deadline = Date.now() + this.opts.connectTimeoutMs;
    const peers = table.peers.filter((p) => p.rank !== this.rank);
    await Promise.all(peers.map((p) => this.dial(p.rank, p.host, p.port, deadline)));
    let timer: NodeJS.Timeout | undefined;
    const missing = () => peers.filter((p) => !this.outbox[p.rank]).map((p) => p.rank);
    await Promise.race([
      allInbound,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new PeerLostError(
                `ranks ${missing().join(', ')} did not connect to rank ${this.rank} within ${this.opts.connectTimeoutMs} ms`,
                { ranks: missing() },
              ),
            ),
          Math.max(1, deadline - Date.now()),
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private checkInbound(): void {
    if (this.size > 0 && this.outbox.filter(Boolean).length === this.size - 1) this.inboundDone?.();
  }

  /** A peer connects to receive our data: once it passes the handshake it is our outbox to it. */
  private async onInbound(ws: WebSocket, socket: Socket): Promise<void> {
    const peer = await acceptPeer(ws, {
      ...this.opts,
      log: this.refusals,
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      sameHost: sameHost(socket),
      table: this.table,
      taken: (r) => this.outbox[r] !== undefined,
      region: () => this.tryRegion(),
      authenticated: () => this.guard.authenticated(socket),
    });
    if (!peer) return;
    const r = peer.rank;
    this.outbox[r] = {
      ws,
      socket: (ws as unknown as { _socket: Socket })._socket,
      credits: new Credits(this.opts.credits),
      shared: peer.shared,
      sent: 0,
    };
    ws.on('message', (msg: Buffer) => this.onMessage(r, msg, true));
    ws.on('close', () => this.onClose(r, 'send'));
    this.checkInbound();
  }

  /**
   * A shared-memory region for one receiving peer, or undefined when /dev/shm cannot hold it:
   * then this rank stops offering (later pairs would fail alike) and says so once.
   */
  private tryRegion(): SharedRegion | undefined {
    if (this.noRegions) return undefined;
    try {
      return createRegion(this.opts.credits, this.opts.chunkBytes);
    } catch (err) {
      this.noRegions = true;
      this.opts.log('warn', `shared memory unavailable, using TCP: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Connects to peer `rank`'s listener to receive its data, retrying while it is not up yet. */
  private async dial(rank: number, host: string, port: number, deadline: number): Promise<void> {
    let delay = 10;
    for (;;) {
      try {
        return await this.dialOnce(rank, host, port, deadline);
      } catch (err) {
        if (err instanceof RingwireError || Date.now() + delay >= deadline) {
          throw err instanceof RingwireError
            ? err
            : new PeerLostError(
                `cannot connect to rank ${rank} at ${host}:${port}: ${(err as Error).message}`,
                { rank },
              );
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 250);
      }
    }
  }

  private async dialOnce(rank: number, host: string, port: number, deadline: number): Promise<void> {
    const ds = await DataSocket.connect(host, port, {
      maxPayload: this.opts.chunkBytes,
      slots: this.opts.credits,
      readBufferBytes: READ_BUFFER_BYTES,
      timeoutMs: Math.max(1, deadline - Date.now()),
      tls: this.opts.tls,
      tlsTimeoutMs: this.opts.authTimeoutMs,
      peer: `rank ${rank} at ${host}:${port}`,
      rank,
    });
    await greetPeer(ds, {
      ...this.opts,
      rank,
      where: `${host}:${port}`,
      myRank: this.rank,
      generation: this.generation,
      deadline,
      unmapped: (err) =>
        this.opts.log(
          this.unmapped++ ? 'debug' : 'warn',
          `cannot map rank ${rank}'s shared memory, using TCP: ${err.message}`,
        ),
    });
    ds.on('control', (d: Buffer) => this.onMessage(rank, d, false));
    ds.on('frame', (h: FrameHeader, payload: Uint8Array) => this.onData(rank, h, payload));
    ds.on('error', (err: Error) => this.protocolError(rank, err));
    ds.on('close', () => this.onClose(rank, 'recv'));
    this.inbound[rank] = ds;
  }

  /** Control messages (either side) and credits (on our sending connections). */
  private onMessage(rank: number, data: Buffer, fromOutbox: boolean): void {
    try {
      if (!isFrame(data)) return void this.emit('control', rank, decode(data));
      const h = readHeader(data, this.opts.chunkBytes);
      if (h.type !== FrameType.CREDIT || !fromOutbox)
        throw new ProtocolError('data frame on a sending connection');
      if (h.generation !== this.generation)
        throw new ProtocolError(`frame from generation ${h.generation}, this job is at ${this.generation}`);
      this.lastProgress = Date.now();
      const box = this.outbox[rank]!;
      box.credits.grant(h.length);
    } catch (err) {
      this.protocolError(rank, err);
    }
  }

  /** A data frame from `rank`, its payload in a slot of the receiving socket. */
  private onData(rank: number, h: FrameHeader, payload: Uint8Array): void {
    if (h.type !== FrameType.DATA)
      return this.protocolError(rank, new ProtocolError('credit frame on a receiving connection'));
    if (h.generation !== this.generation)
      return this.protocolError(
        rank,
        new ProtocolError(`frame from generation ${h.generation}, this job is at ${this.generation}`),
      );
    this.lastProgress = Date.now();
    const inbox = this.inbox[rank];
    const frame = { h, payload };
    if (inbox.waiter) {
      const w = inbox.waiter;
      inbox.waiter = undefined;
      w.resolve(frame);
    } else inbox.queue.push(frame);
  }

  private protocolError(rank: number, err: unknown): void {
    const e = err instanceof RingwireError ? err : new ProtocolError(String((err as Error)?.message ?? err));
    this.opts.log('error', `protocol error from rank ${rank}: ${e.message}`);
    this.emit('protocol', rank, new ProtocolError(`rank ${rank}: ${e.message}`, { rank }));
  }

  /**
   * A peer that said bye had finished every op it issued, so its closed connections only matter
   * to a later need: a receive that still waits once its data connection is gone, or a send.
   * Without a bye, the peer is lost: 'lost' fails the job.
   */
  private onClose(rank: number, which: 'recv' | 'send'): void {
    if (this.closing) return;
    if (!this.byes.has(rank)) return void (this.lost.add(rank), this.emit('lost', rank, 'connection closed'));
    if (which === 'recv' && this.inbox[rank]?.waiter)
      this.inbox[rank].waiter!.reject(this.gone(rank)), (this.inbox[rank].waiter = undefined);
    if (which === 'send') this.outbox[rank]?.credits.fail(this.gone(rank));
  }

  /** The peer announced a graceful close: later uses of it fail as lost, without alarm. */
  markBye(rank: number): void {
    this.byes.add(rank);
  }

  /**
   * Sends one frame to `peer` once it has credit. Resolves when the frame is queued, with
   * `written`, which settles once the bytes are handed to the kernel (then `payload` may change).
   */
  async send(peer: number, h: FrameHeader, payload: Uint8Array): Promise<{ written: Promise<void> }> {
    const box = this.outbox[peer];
    if (this.failure) throw this.failure;
    if (!box || box.ws.readyState !== WebSocket.OPEN) throw this.gone(peer);
    const wait = box.credits.take();
    if (wait) await wait; // no await (no extra tick) while credit is at hand
    if (box.ws.readyState !== WebSocket.OPEN) throw this.gone(peer);
    // One unmasked WebSocket frame (server to client), written without copying the payload:
    // the frame header and our header in one small buffer, then the payload where it lies.
    if (box.shared) {
      // Same host: the payload goes into the peer's next slot, only the header on the wire.
      copyBytes(box.shared[box.sent++ % box.shared.length].subarray(0, payload.length), payload);
      payload = payload.subarray(0, 0);
      h = { ...h, shared: true };
    }
    const total = HEADER_BYTES + payload.length;
    const ext = total < 126 ? 0 : total < 65536 ? 2 : 8;
    const head = Buffer.allocUnsafe(2 + ext + HEADER_BYTES);
    head[0] = 0x82;
    head[1] = ext === 0 ? total : ext === 2 ? 126 : 127;
    if (ext === 2) head.writeUInt16BE(total, 2);
    else if (ext === 8) head.writeBigUInt64BE(BigInt(total), 2);
    writeHeader(head.subarray(2 + ext), h);
    this.lastProgress = Date.now();
    const written = new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) =>
        err
          ? reject(
              new PeerLostError(`rank ${peer} lost: a send to it failed (${err.message})`, { rank: peer }),
            )
          : resolve();
      const { socket } = box;
      socket.cork();
      if (payload.length === 0) socket.write(head, done);
      else
        socket.write(head),
          socket.write(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), done);
      socket.uncork();
    });
    written.catch(() => {}); // the caller awaits it; a failure is also reported through 'lost'
    return { written };
  }

  private gone(peer: number): PeerLostError {
    return new PeerLostError(
      `rank ${peer} is gone (${this.byes.has(peer) ? 'it closed its communicator' : 'connection closed'})`,
      { rank: peer },
    );
  }

  /** Ranks whose payloads from us go through shared memory. */
  sharedPeers(): number[] {
    return this.outbox.flatMap((b, r) => (b?.shared ? [r] : []));
  }

  /** The next frame from `peer`. Call `release(peer)` once its payload has been consumed. */
  recv(peer: number): Promise<Frame> {
    if (this.failure) return Promise.reject(this.failure);
    const inbox = this.inbox[peer];
    const f = inbox.queue.shift();
    if (f) return Promise.resolve(f);
    if (!this.inbound[peer]?.open) return Promise.reject(this.gone(peer));
    return new Promise((resolve, reject) => (inbox.waiter = { resolve, reject }));
  }

  /** Data frames from `peer` go where `placer` says (see DataSocket.placer); undefined stops it. */
  place(peer: number, placer: Placer | undefined): void {
    const ds = this.inbound[peer];
    if (ds) ds.placer = placer;
  }

  /** Returns one frame's credit to `peer`. */
  release(peer: number): void {
    const ds = this.inbound[peer];
    if (!ds?.open) return;
    ds.release();
    ds.send(
      writeHeader(Buffer.allocUnsafe(HEADER_BYTES), {
        type: FrameType.CREDIT,
        desc: CREDIT_DESC,
        hash: 0,
        step: 0,
        generation: this.generation,
        seq: 0,
        offset: 0,
        length: 1,
      }),
    );
  }

  /** Sends a control message (msgpack) to `peer`, on both its connections with `both`; dropped if gone. */
  control(peer: number, msg: EngineMessage, both = false): void {
    const data = encode(msg);
    const ds = this.inbound[peer];
    const ws = this.outbox[peer]?.ws;
    if (ds?.open) ds.send(data);
    if ((both || !ds?.open) && ws?.readyState === WebSocket.OPEN) ws.send(data);
  }

  /** Fails every waiting send and receive with `err`; later calls fail at once. */
  fail(err: RingwireError): void {
    if (this.failure) return;
    this.failure = err;
    // A lost peer is named by `rank`; a timeout names in `ranks` those that never arrived or
    // answered (its `rank`, if any, is the rank that reported it).
    const named = err.code === ErrorCode.PEER_LOST ? [err.rank, ...(err.ranks ?? [])] : [];
    if (err.code === ErrorCode.TIMEOUT) named.push(...(err.ranks ?? []));
    for (const r of named) if (r !== undefined && r !== this.rank) this.lost.add(r);
    for (const inbox of this.inbox) if (inbox.waiter) inbox.waiter.reject(err), (inbox.waiter = undefined);
    for (const box of this.outbox) box?.credits.fail(err);
  }

  /** Closes every connection: gracefully, except those of peers known to be lost, which are cut at once. */
  async close(): Promise<void> {
    this.closing = true;
    // After a failure no queued data matters: a peer that does not answer at once is not waited for.
    const grace = this.failure
      ? Math.min(this.opts.closeTimeoutMs, FAILED_CLOSE_MS)
      : this.opts.closeTimeoutMs;
    for (const r of this.lost) this.inbound[r]?.destroy(), this.outbox[r]?.ws.terminate();
    // Closing frames go after the data still queued: on a slow link that can take a while.
    await Promise.all([
      ...this.inbound.map(
        (ds) =>
          ds &&
          new Promise<void>((resolve) => {
            if (!ds.open) return resolve();
            ds.once('close', () => resolve());
            ds.close();
            setTimeout(() => (ds.destroy(), resolve()), grace).unref();
          }),
      ),
      ...this.outbox.map(
        (b) =>
          b &&
          new Promise<void>((resolve) => {
            if (b.ws.readyState === WebSocket.CLOSED) return resolve();
            b.ws.once('close', () => resolve());
            b.ws.close(1000);
            setTimeout(() => (b.ws.terminate(), resolve()), grace).unref();
          }),
      ),
    ]);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
