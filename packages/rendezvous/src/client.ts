import { EventEmitter } from 'node:events';
import {
  AuthError,
  DEFAULTS,
  ErrorCode,
  InvalidArgumentError,
  RendezvousError,
  RingwireError,
} from '@ringwire/common';
import WebSocket from 'ws';
import {
  type ClientMessage,
  decode,
  encode,
  type JoinRequest,
  type PeerTable,
  proof,
  type Request,
} from './protocol.js';

export interface RendezvousClientOptions {
  /** ws://host:port of the rendezvous server. */
  url: string;
  job: string;
  token?: string;
  /** Connecting, retries included. */
  connectTimeoutMs?: number;
  heartbeatIntervalMs?: number;
}

/** The job-wide failure the server pushed: which rank, why, and the error code to raise. */
export interface AbortEvent {
  rank: number;
  reason: string;
  code: string;
}

export interface JoinResult extends PeerTable {
  rank: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** The client's events: an abort pushed by the server, and the loss of the connection. */
export interface RendezvousClientEvents {
  abort: [event: AbortEvent];
  lost: [err: RendezvousError];
}

/**
 * One worker's connection to the rendezvous. Emits 'abort' (AbortEvent) when the job fails
 * anywhere, and 'lost' (RingwireError) if the connection to the server itself drops.
 */
export class RendezvousClient extends EventEmitter<RendezvousClientEvents> {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private heartbeat?: NodeJS.Timeout;
  private closing = false;
  private lostError?: RingwireError;

  private constructor(
    private readonly ws: WebSocket,
    readonly job: string,
  ) {
    super();
  }

  /** This end's address on the connection to the server: the interface the peers can reach too. */
  get localAddress(): string {
    const addr =
      (this.ws as unknown as { _socket?: { localAddress?: string } })._socket?.localAddress ?? '127.0.0.1';
    return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  }

  static async connect(options: RendezvousClientOptions): Promise<RendezvousClient> {
    const { url, job, token = '' } = options;
    if (typeof url !== 'string' || !/^wss?:\/\//.test(url))
      throw new InvalidArgumentError(`rendezvous url must be ws://host:port, got ${JSON.stringify(url)}`);
    if (typeof job !== 'string' || !job) throw new InvalidArgumentError('job id must be a non-empty string');
    const deadline = Date.now() + (options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs);
    let delay = 20;
    for (;;) {
      try {
        const ws = await handshake(url, job, token, deadline);
        const client = new RendezvousClient(ws, job);
        client.start(options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs);
        return client;
      } catch (err) {
        const retriable =
          (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' && Date.now() + delay < deadline;
        if (!retriable) {
          if (err instanceof RingwireError) throw err;
          throw new RendezvousError(`cannot reach the rendezvous at ${url}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 500);
      }
    }
  }

  private start(heartbeatMs: number): void {
    this.ws.on('message', (data) => {
      let msg: ReturnType<typeof decode>;
      try {
        msg = decode(data as Buffer);
      } catch {
        return this.ws.terminate();
      }
      if (msg.t === 'res') {
        const p = this.pending.get(msg.id as number);
        if (!p) return;
        this.pending.delete(msg.id as number);
        clearTimeout(p.timer);
        if (msg.ok) p.resolve(msg.value);
        else p.reject(RingwireError.fromJSON(msg.error as { code: string; message: string }));
      } else if (msg.t === 'abort') {
        this.emit('abort', {
          rank: msg.rank as number,
          reason: String(msg.reason),
          code: String(msg.code),
        } satisfies AbortEvent);
      }
    });
    this.ws.on('close', (code, reason) => {
      clearInterval(this.heartbeat);
      const err = new RendezvousError(
        `connection to the rendezvous closed (${code}${reason.length ? ` ${reason}` : ''})`,
      );
      this.lostError = err;
      for (const p of this.pending.values()) clearTimeout(p.timer), p.reject(err);
      this.pending.clear();
      if (!this.closing) this.emit('lost', err);
    });
    this.ws.on('error', () => {}); // 'close' follows and says it
    this.heartbeat = setInterval(
      () => this.ws.readyState === WebSocket.OPEN && this.send({ t: 'hb' }),
      heartbeatMs,
    );
    this.heartbeat.unref();
  }

  private send(msg: ClientMessage): void {
    this.ws.send(encode(msg));
  }

  private request<T>(req: Request, timeoutMs: number = DEFAULTS.connectTimeoutMs): Promise<T> {
    const { op } = req;
    if (this.lostError) return Promise.reject(this.lostError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RendezvousError(`rendezvous did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.send({ t: 'req', id, ...req });
    });
  }

  /** Joins the job; resolves when all `size` workers are in, with this worker's rank and the peer table. */
  join(req: JoinRequest): Promise<JoinResult> {
    const timeoutMs = req.timeoutMs ?? DEFAULTS.joinTimeoutMs;
    return this.request({ op: 'join', ...req, timeoutMs }, timeoutMs + 5_000);
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
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.ws.readyState === WebSocket.OPEN) await this.request({ op: 'leave' }, 2_000).catch(() => {});
    clearInterval(this.heartbeat);
    await new Promise<void>((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
      setTimeout(() => (this.ws.terminate(), resolve()), 1_000).unref();
    });
  }
}

/** Opens the socket and answers the server's challenge; resolves once welcomed. */
function handshake(url: string, job: string, token: string, deadline: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
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
    ws.on('error', fail);
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
