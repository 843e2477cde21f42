import { EventEmitter } from 'node:events';
import {
  AuthError,
  DEFAULTS,
  ErrorCode,
  InvalidArgumentError,
  RendezvousError,
  RingwireError,
  type TlsMaterial,
  tlsClientOptions,
  tlsRefusal,
} from '@ringwire/common';
import WebSocket from 'ws';
import {
  type ClientMessage,
  decode,
  encode,
  type JoinRequest,
  type MetricsReport,
  type PeerTable,
  proof,
  type RejoinRequest,
  type Request,
  type RequestOp,
} from './protocol.js';

/** Errors that mean "not there yet" on the first connect: retried until the connect timeout. */
const RETRY_CONNECT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export interface RendezvousClientOptions {
  /** ws://host:port of the rendezvous server, or wss://host:port (TLS: see `tls`). */
  url: string;
  job: string;
  token?: string;
  /**
   * Connecting, retries included; also the default bound of a request, and how long the
   * connection may be away before 'lost' is emitted.
   */
  connectTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** This member's certificate for a wss:// rendezvous (mutual TLS); see readTls. */
  tls?: TlsMaterial;
}

/** The job-wide failure the server pushed: which rank, why, and the error code to raise. */
export interface AbortEvent {
  rank: number;
  reason: string;
  code: string;
}

/** Elastic jobs: workers wait to join the next generation (pushed to the running generation's members). */
export interface MembershipEvent {
  generation: number;
  waiting: number;
}

export interface JoinResult extends PeerTable {
  rank: number;
}

/**
 * The client's events: an abort pushed by the server; 'disconnected' when the connection drops
 * (it reconnects by itself), 'reconnected' once it has re-registered, and 'lost' when it has been
 * away longer than connectTimeoutMs, or the server refused it back (it then stops retrying).
 */
export interface RendezvousClientEvents {
  abort: [event: AbortEvent];
  membership: [event: MembershipEvent];
  disconnected: [err: RendezvousError];
  reconnected: [info: { awayMs: number }];
  lost: [err: RingwireError];
}

interface Pending {
  op: RequestOp;
  msg: ClientMessage;
  /** Whether it went out on the current connection (if not, it goes once the client is back). */
  sent: boolean;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Requests that may be sent again after the connection dropped with their answer outstanding:
 * repeating them changes nothing the first one did. An add or compare-and-set in flight fails
 * instead (it may or may not have been applied); a join in flight was dropped with its connection.
 */
const REPEATABLE: ReadonlySet<RequestOp> = new Set(['join', 'set', 'get', 'del', 'barrier', 'report']);

/**
 * One worker's connection to the rendezvous. When the connection drops it reconnects with
 * exponential backoff (DEFAULTS.reconnectMinMs doubling to reconnectMaxMs) until closed, and
 * re-registers as the same member (job, rank, generation); requests made meanwhile wait for it
 * within their own timeout. See RendezvousClientEvents.
 */
export class RendezvousClient extends EventEmitter<RendezvousClientEvents> {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly requestTimeoutMs: number;
  /** close() was called: no more reconnecting. */
  private closing = false;
  private closed?: Promise<void>;
  /** Set once requests can never succeed (closed, or refused back): they reject with it at once. */
  private gaveUp?: RingwireError;
  /** Set while the connection is down and the reconnection loop runs. */
  private away?: { since: number; lostTimer: NodeJS.Timeout; wake?: () => void };
  private readonly tls?: TlsMaterial;
  /** What this worker joined as, to re-register after a reconnection. */
  private member?: RejoinRequest;

  private constructor(
    private ws: WebSocket,
    readonly job: string,
    private readonly url: string,
    private readonly token: string,
    options: RendezvousClientOptions,
  ) {
    super();
    this.requestTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.tls = options.tls;
    this.attach(ws);
    this.heartbeat = setInterval(
      () =>
        this.ws.readyState === WebSocket.OPEN && this.ws.send(encode({ t: 'hb' } satisfies ClientMessage)),
      options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
    );
    this.heartbeat.unref();
  }

  /** This end's address on the connection to the server: the interface the peers can reach too. */
  get localAddress(): string {
    const addr =
      (this.ws as unknown as { _socket?: { localAddress?: string } })._socket?.localAddress ?? '127.0.0.1';
    return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  }

  /**
   * Connects and registers, retrying until `connectTimeoutMs` while the rendezvous is not there
   * yet: refused (not listening yet) or a name that does not resolve yet (a Kubernetes Service
   * before its pod is ready, as torchrun's rendezvous also waits out).
   */
  static async connect(options: RendezvousClientOptions): Promise<RendezvousClient> {
    const { url, job, token = '' } = options;
    if (typeof url !== 'string' || !/^wss?:\/\//.test(url))
      throw new InvalidArgumentError(`rendezvous url must be ws://host:port, got ${JSON.stringify(url)}`);
    if (typeof job !== 'string' || !job) throw new InvalidArgumentError('job id must be a non-empty string');
    const deadline = Date.now() + (options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs);
    let delay = 20;
    for (;;) {
      try {
        const ws = await handshake(url, job, token, deadline, options.tls);
        return new RendezvousClient(ws, job, url, token, options);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!RETRY_CONNECT.has(code) || Date.now() + delay >= deadline) {
          if (err instanceof RingwireError) throw err;
          const waited = RETRY_CONNECT.has(code)
            ? ` (retried for ${options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs} ms)`
            : '';
          const why = `cannot reach the rendezvous at ${url}${waited}: ${(err as Error).message}`;
          throw new RendezvousError(why, { cause: err });
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 500);
      }
    }
  }

  private attach(ws: WebSocket): void {
    this.ws = ws;
    ws.on('message', (data) => this.onMessage(ws, data as Buffer));
    ws.on('close', (code, reason) => this.onClose(ws, code, reason));
    ws.on('error', () => {}); // 'close' follows and says it
  }

  private onMessage(ws: WebSocket, data: Buffer): void {
    let msg: ReturnType<typeof decode>;
    try {
      msg = decode(data);
    } catch {
      return ws.terminate();
    }
    if (msg.t === 'res') {
      const p = this.pending.get(msg.id as number);
      if (!p) return;
      this.pending.delete(msg.id as number);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(RingwireError.fromJSON(msg.error as { code: string; message: string }));
    } else if (msg.t === 'membership') {
      this.emit('membership', {
        generation: Number(msg.generation),
        waiting: Number(msg.waiting),
      } satisfies MembershipEvent);
    } else if (msg.t === 'abort') {
      this.emit('abort', {
        rank: msg.rank as number,
        reason: String(msg.reason),
        code: String(msg.code),
      } satisfies AbortEvent);
    }
  }

  private onClose(ws: WebSocket, code: number, reason: Buffer): void {
    if (ws !== this.ws) return;
    const err = new RendezvousError(
      `connection to the rendezvous closed (${code}${reason.length ? ` ${reason}` : ''})`,
    );
    if (this.closing || this.gaveUp) return this.rejectAll(this.gaveUp ?? err);
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      if (REPEATABLE.has(p.op)) p.sent = false;
      else {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.reject(
          new RendezvousError(
            `connection to the rendezvous closed while ${p.op} was in flight (it may or may not have been applied)`,
          ),
        );
      }
    }
    if (this.away) return; // a reconnection attempt failed: the loop goes on
    const lostAfterMs = this.requestTimeoutMs;
    const lostTimer = setTimeout(
      () =>
        this.emit(
          'lost',
          new RendezvousError(
            `the rendezvous at ${this.url} has been unreachable for ${lostAfterMs} ms (still retrying)`,
          ),
        ),
      lostAfterMs,
    ).unref();
    this.away = { since: Date.now(), lostTimer };
    this.emit('disconnected', err);
    void this.reconnect();
  }

  /** Reconnects with exponential backoff and re-registers; then sends what waited meanwhile. */
  private async reconnect(): Promise<void> {
    const away = this.away!;
    const attemptMs = Math.min(this.requestTimeoutMs, DEFAULTS.heartbeatTimeoutMs);
    let delay: number = DEFAULTS.reconnectMinMs;
    while (!this.closing && !this.gaveUp) {
      // Ref'd like the socket it replaces; close() wakes it.
      await new Promise<void>((r) => {
        const t = setTimeout(r, delay);
        away.wake = () => (clearTimeout(t), r());
      });
      delay = Math.min(delay * 2, DEFAULTS.reconnectMaxMs);
      if (this.closing || this.gaveUp) return;
      let ws: WebSocket;
      try {
        ws = await handshake(this.url, this.job, this.token, Date.now() + attemptMs, this.tls);
      } catch (err) {
        if (err instanceof AuthError) return this.giveUp(err);
        continue;
      }
      if (this.closing) return void ws.terminate();
      this.attach(ws);
      if (this.member) {
        const refused = await this.request({ op: 'rejoin', ...this.member }, attemptMs, true).then(
          () => undefined,
          (e: RingwireError) => e,
        );
        if (this.closing) return;
        // Still open: the server answered no. Closed (or timed out, which closes it): try again.
        if (refused && ws.readyState === WebSocket.OPEN) return this.giveUp(refused);
        if (refused) continue;
      }
      clearTimeout(away.lostTimer);
      this.away = undefined;
      for (const p of this.pending.values()) if (!p.sent) (p.sent = true), ws.send(encode(p.msg));
      this.emit('reconnected', { awayMs: Date.now() - away.since });
      return;
    }
  }

  /** The server refused this member back (or the token): nothing will succeed any more. */
  private giveUp(err: RingwireError): void {
    if (this.closing) return;
    this.gaveUp = err;
    if (this.away) clearTimeout(this.away.lostTimer);
    this.away = undefined;
    this.rejectAll(err);
    this.ws.close(1000);
    this.emit('lost', err);
  }

  private rejectAll(err: Error): void {
    for (const p of this.pending.values()) clearTimeout(p.timer), p.reject(err);
    this.pending.clear();
  }

  /**
   * Sends a request and waits for its answer up to timeoutMs, reconnection included: while the
   * client is away it waits (unsent) for the reconnection. `now` sends it on the current
   * connection even then (the rejoin itself), and a timeout closes that connection.
   */
  private request<T>(req: Request, timeoutMs: number = this.requestTimeoutMs, now = false): Promise<T> {
    if (this.gaveUp) return Promise.reject(this.gaveUp);
    const id = this.nextId++;
    const msg: ClientMessage = { t: 'req', id, ...req };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const p = this.pending.get(id);
        this.pending.delete(id);
        if (now) this.ws.terminate();
        reject(
          new RendezvousError(
            p && !p.sent
              ? `${req.op} waited ${timeoutMs} ms for the rendezvous at ${this.url} to come back`
              : `rendezvous did not answer ${req.op} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const p: Pending = {
        op: req.op,
        msg,
        sent: false,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer,
      };
      this.pending.set(id, p);
      if (now || !this.away) (p.sent = true), this.ws.send(encode(msg));
    });
  }

  /**
   * Joins the job; resolves when all `size` workers are in, with this worker's rank and the peer
   * table. A member of an elastic job may join again, for the next generation.
   */
  async join(req: JoinRequest): Promise<JoinResult> {
    const timeoutMs = req.timeoutMs ?? DEFAULTS.joinTimeoutMs;
    const table = await this.request<JoinResult>({ op: 'join', ...req, timeoutMs }, timeoutMs + 5_000);
    const { rank, size, generation } = table;
    this.member = {
      rank,
      size,
      generation,
      host: req.host,
      port: req.port,
      localRank: table.peers[rank].localRank,
      elastic: req.elastic,
      workerId: req.workerId,
    };
    return table;
  }

  set(key: string, value: unknown): Promise<void> {
    return this.request({ op: 'set', key, value });
  }

  /** The value at key (null when absent); with `wait`, blocks until some worker sets it, up to timeoutMs. */
  get<T = unknown>(key: string, options: { wait?: boolean; timeoutMs?: number } = {}): Promise<T | null> {
    const timeoutMs = options.timeoutMs ?? DEFAULTS.waitTimeoutMs;
    return this.request({ op: 'get', key, wait: options.wait ?? false, timeoutMs }, timeoutMs + 5_000);
  }

  /** Atomically adds delta to the integer at key (absent counts as 0) and returns the new value. */
  add(key: string, delta = 1): Promise<number> {
    return this.request({ op: 'add', key, delta });
  }

  /** Sets key to value only if it currently holds `expected` (null: absent). */
  compareAndSet(
    key: string,
    expected: unknown,
    value: unknown,
  ): Promise<{ swapped: boolean; value: unknown }> {
    return this.request({ op: 'cas', key, expected: expected ?? null, value });
  }

  delete(key: string): Promise<boolean> {
    return this.request({ op: 'del', key });
  }

  /** Resolves once every member of the job has called barrier(name). */
  barrier(name: string, options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? DEFAULTS.waitTimeoutMs;
    return this.request({ op: 'barrier', name, timeoutMs }, timeoutMs + 5_000);
  }

  /**
   * Sends this member's counters (no answer; dropped while the connection is down: the next
   * report carries the totals).
   */
  sendMetrics(report: MetricsReport): void {
    if (this.member && !this.away && this.ws.readyState === WebSocket.OPEN)
      this.ws.send(encode({ t: 'metrics', ...report } satisfies ClientMessage));
  }

  /** Tells every member of the job that it failed; `rank` defaults to this worker's. */
  reportFailure(reason: string, options: { rank?: number; code?: string } = {}): Promise<void> {
    return this.request({
      op: 'report',
      reason,
      rank: options.rank,
      code: options.code ?? ErrorCode.ABORTED,
    });
  }

  /** Leaves gracefully (no abort is raised for this worker) and closes the connection. */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.away?.wake?.();
    if (this.away) clearTimeout(this.away.lostTimer);
    else if (this.ws.readyState === WebSocket.OPEN)
      await this.request({ op: 'leave' }, 2_000).catch(() => {});
    clearInterval(this.heartbeat);
    this.gaveUp ??= new RendezvousError('the rendezvous client is closed');
    this.rejectAll(this.gaveUp);
    await new Promise<void>((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
      setTimeout(() => (this.ws.terminate(), resolve()), 1_000).unref();
    });
  }
}

/** Opens the socket and answers the server's challenge; resolves once welcomed. */
function handshake(
  url: string,
  job: string,
  token: string,
  deadline: number,
  tls?: TlsMaterial,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      ...(tls && url.startsWith('wss:') && tlsClientOptions(tls)),
      perMessageDeflate: false,
      maxPayload: DEFAULTS.maxControlBytes,
      handshakeTimeout: Math.max(1, deadline - Date.now()),
    });
    const timer = setTimeout(
      () => fail(new RendezvousError(`rendezvous at ${url} did not complete the handshake in time`)),
      Math.max(1, deadline - Date.now()),
    );
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    ws.on('error', (err) => {
      // A certificate refused either way will not be accepted on a retry.
      const why = tlsRefusal(err);
      fail(why ? new AuthError(`rendezvous at ${url}: TLS refused: ${why}`) : err);
    });
    ws.on('close', (code, reason) => {
      if (code === 4401) fail(new AuthError(`rendezvous at ${url} rejected the token for job ${job}`));
      else
        fail(
          new RendezvousError(
            `rendezvous at ${url} closed the connection during the handshake (${code} ${reason})`,
          ),
        );
    });
    ws.on('message', function onMessage(data) {
      let msg: ReturnType<typeof decode>;
      try {
        msg = decode(data as Buffer);
      } catch (err) {
        return fail(err as Error);
      }
      if (msg.t === 'challenge' && msg.nonce instanceof Uint8Array) {
        ws.send(encode({ t: 'hello', job, proof: proof(token, msg.nonce, job) } satisfies ClientMessage));
      } else if (msg.t === 'welcome') {
        done = true;
        clearTimeout(timer);
        ws.removeListener('message', onMessage);
        ws.removeAllListeners('close');
        ws.removeAllListeners('error');
        resolve(ws);
      } else {
        fail(new RendezvousError(`unexpected ${msg.t} during the handshake`));
      }
    });
  });
}
