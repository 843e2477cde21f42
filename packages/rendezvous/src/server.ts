import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AbortedError,
  createListener,
  createLogger,
  DEFAULTS,
  ErrorCode,
  escapingLogger,
  InvalidArgumentError,
  isLoopback,
  type Logger,
  PreAuthGuard,
  RendezvousError,
  RingwireError,
  rateLimitedLogger,
  readEnv,
  resolveHeartbeatTimeoutMs,
  TimeoutError,
  type TlsMaterial,
} from '@ringwire/common';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  type ElasticState,
  type GenerationRecord,
  newElasticState,
  nextOrder,
  parseBounds,
  record,
} from './elastic.js';
import { bearer, Observability } from './http/routes.js';
import {
  decode,
  encode,
  jobCredential,
  type PeerInfo,
  type PeerTable,
  proofMatches,
  type ServerMessage,
  type Untrusted,
} from './protocol.js';

export interface RendezvousServerOptions {
  /** Address to bind; anything but loopback requires a token. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 (the default) picks a free one. */
  port?: number;
  /**
   * The server's secret. Each job's credential derives from it (`jobCredential(secret, job)`), and
   * a connection for job J must prove J's credential, which gives nothing of any other job. The
   * secret itself is accepted too (with a warning: such jobs are not isolated from each other).
   * Default '' (loopback only, no isolation).
   */
  secret?: string;
  /** @deprecated the old name of `secret`. */
  token?: string;
  /**
   * A member silent this long is declared lost (a member may ask for longer when it joins).
   * Default: RINGWIRE_HEARTBEAT_TIMEOUT_MS, else max(5 s, RINGWIRE_TIMEOUT_MS); see
   * `resolveHeartbeatTimeoutMs`.
   */
  heartbeatTimeoutMs?: number;
  /**
   * A member of a formed job whose connection drops has this long to re-register before the job
   * is aborted for it (its peers see a dead process's sockets close at once). Default:
   * heartbeatTimeoutMs.
   */
  rejoinGraceMs?: number;
  authTimeoutMs?: number;
  maxMessageBytes?: number;
  /**
   * Elastic jobs: a generation forms this long after the last membership change, unless the
   * workers' join says otherwise. Default: RINGWIRE_ELASTIC_SETTLE_MS, else 1000.
   */
  elasticSettleMs?: number;
  log?: Logger;
  /**
   * Serve wss (https) with mutual TLS: every client must present a certificate signed by `ca`
   * (see readTls). Default: plain ws.
   */
  tls?: TlsMaterial;
}

interface Conn {
  ws: WebSocket;
  id: number;
  remote: string;
  nonce: Buffer;
  job?: Job;
  member?: Member;
  lastSeen: number;
  left: boolean;
  /** Refused: closing, and nothing more it sends is read or logged. */
  refused?: boolean;
}

interface Member {
  conn: Conn;
  reqId: number;
  wantRank?: number;
  host: string;
  port: number;
  wantLocalRank?: number;
  rank: number;
  /** A stable identity across generations (RINGWIRE_WORKER_ID; default host:port). */
  workerId: string;
  /** Elastic jobs: arrival order among waiting workers; `rejoined`: it has joined the next generation. */
  arrived?: number;
  rejoined?: boolean;
  /** When an elastic member's connection closed after it left gracefully (it is expected to join again). */
  leftAt?: number;
  /** Declared lost after this long without a message: the longer of the server's and its own. */
  heartbeatTimeoutMs: number;
  timer?: NodeJS.Timeout;
  /** Running while the member's connection is down: the job is aborted for it when it fires. */
  grace?: NodeJS.Timeout;
}

interface Waiter {
  conn: Conn;
  id: number;
  timer: NodeJS.Timeout;
}

interface Job {
  id: string;
  size?: number;
  generation: number;
  pending: Member[];
  members?: Member[];
  kv: Map<string, unknown>;
  getWaiters: Map<string, Waiter[]>;
  barriers: Map<string, Map<number, Waiter>>;
  abort?: { rank: number; reason: string; code: string };
  /** A member authenticated with the server's secret rather than the job's credential (warned once). */
  secretUsed?: boolean;
  /** An elastic job: its bounds, settle timer and generation history (see elastic.ts). */
  elastic?: ElasticState;
}

/** One job as `/status` shows it to a holder of its credential. */
export interface JobStatus {
  id: string;
  generation: number;
  size: number | null;
  state: 'aborted' | 'running' | 'forming';
  abort: { rank: number; reason: string; code: string } | null;
  joined: number;
  members: {
    rank: number | null;
    workerId: string;
    host: string;
    port: number;
    alive: boolean;
    lastSeenMsAgo: number;
  }[];
  /** Elastic jobs: the bounds, the workers waiting for the next generation, and every generation so far. */
  elastic: { min: number; max: number; settleMs: number } | null;
  waiting: number;
  history: GenerationRecord[];
}

const KEY_MAX = 1024;

/**
 * The rendezvous service: membership and peer tables, a key-value store, barriers and liveness
 * for any number of jobs. Each worker keeps one WebSocket open; its close is how the server
 * learns, at once, that the worker is gone. Events: 'formed' (PeerTable), 'abort' (the job's
 * first failure, reported or detected), 'report' (every failure a member reports) and 'set'
 * ({ job, key, value }: every key a member sets; ringrun's end-of-job summary listens).
 */
export class RendezvousServer extends EventEmitter {
  private readonly opts: Required<Omit<RendezvousServerOptions, 'log' | 'token' | 'tls'>> & {
    log: Logger;
    tls?: TlsMaterial;
  };
  private http?: Server;
  private wss?: WebSocketServer;
  private readonly jobs = new Map<string, Job>();
  private readonly generations = new Map<string, number>();
  /** Elastic jobs' state, kept like `generations` while a job has no connection between generations. */
  private readonly elasticJobs = new Map<string, ElasticState>();
  private arrivals = 0;
  private readonly conns = new Set<Conn>();
  private sweeper?: NodeJS.Timeout;
  private nextConnId = 1;
  private address?: AddressInfo;
  /** Refused and dropped connections: logged, but a flood of them only as a count. */
  private readonly refusals: Logger;
  private readonly guard: PreAuthGuard;
  /** /metrics and the live job page (http/). */
  private readonly observe = new Observability({
    visible: (credential) => this.visibleTo(credential)?.map((job) => this.jobStatus(job)),
    held: () => this.jobs.keys(),
    authenticated: (socket) => this.guard.authenticated(socket),
  });

  constructor(options: RendezvousServerOptions = {}) {
    super();
    this.opts = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      secret: options.secret ?? options.token ?? '',
      heartbeatTimeoutMs: resolveHeartbeatTimeoutMs({ heartbeatTimeoutMs: options.heartbeatTimeoutMs }),
      rejoinGraceMs:
        options.rejoinGraceMs ??
        resolveHeartbeatTimeoutMs({ heartbeatTimeoutMs: options.heartbeatTimeoutMs }),
      authTimeoutMs: options.authTimeoutMs ?? DEFAULTS.authTimeoutMs,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULTS.maxControlBytes,
      elasticSettleMs: options.elasticSettleMs ?? readEnv('elasticSettleMs') ?? DEFAULTS.elasticSettleMs,
      // Job ids, hosts and reasons come from clients: every line is escaped.
      log: escapingLogger(options.log ?? createLogger('[rendezvous]')),
      tls: options.tls,
    };
    this.refusals = rateLimitedLogger(this.opts.log, 'refused rendezvous connections');
    this.guard = new PreAuthGuard({
      dropped: (remote, why) => this.refusals('warn', `dropping connection ${remote}: ${why}`),
    });
    if (!Number.isInteger(this.opts.port) || this.opts.port < 0 || this.opts.port > 65535) {
      throw new InvalidArgumentError(`port must be an integer in 0..65535, got ${options.port}`);
    }
    const hb = this.opts.heartbeatTimeoutMs;
    if (!Number.isInteger(hb) || hb < 1)
      throw new InvalidArgumentError(`heartbeatTimeoutMs must be a positive integer, got ${hb}`);
  }

  /** Binds and starts serving; resolves with the address workers should use. */
  async listen(): Promise<{ host: string; port: number; url: string }> {
    const { host, secret } = this.opts;
    if (!isLoopback(host) && !secret) {
      throw new RendezvousError(
        `refusing to bind ${host} without a token: anyone who reaches it could join or disturb a job`,
      );
    }
    this.http = createListener(
      this.opts.tls,
      this.opts.authTimeoutMs,
      (req, res) => this.onHttp(req, res),
      (remote, why) => this.refusals('warn', `refusing connection ${remote}: ${why}`),
    );
    this.guard.watch(this.http);
    this.wss = new WebSocketServer({
      server: this.http,
      maxPayload: this.opts.maxMessageBytes,
      perMessageDeflate: false,
    });
    this.wss.on('connection', (ws, req) => this.onConnection(ws, req));
    this.wss.on('error', () => {}); // the http server's own 'error' rejects listen() below
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', reject);
      this.http!.listen(this.opts.port, host, () => resolve());
    });
    this.address = this.http.address() as AddressInfo;
    const sweepEvery = Math.max(50, Math.floor(this.opts.heartbeatTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sweep(), sweepEvery).unref();
    return { host, port: this.address.port, url: this.url };
  }

  get url(): string {
    if (!this.address) throw new RendezvousError('server is not listening');
    const h =
      this.opts.host.includes(':') && !this.opts.host.startsWith('[')
        ? `[${this.opts.host}]`
        : this.opts.host;
    return `${this.opts.tls ? 'wss' : 'ws'}://${h}:${this.address.port}`;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const c of this.conns) c.ws.terminate();
    for (const job of this.jobs.values()) this.clearTimers(job);
    this.jobs.clear();
    this.observe.close();
    this.wss?.close();
    this.http?.closeAllConnections();
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
  }

  /** Every job with its members, generation and liveness: the in-process view (trusted callers). */
  status(): { jobs: JobStatus[] } {
    return { jobs: [...this.jobs.values()].map((job) => this.jobStatus(job)) };
  }

  private jobStatus(job: Job): JobStatus {
    const now = Date.now();
    const e = job.elastic;
    return {
      id: job.id,
      generation: job.generation,
      size: job.size ?? null,
      state: job.abort ? 'aborted' : job.members ? 'running' : 'forming',
      abort: job.abort ?? null,
      joined: job.members ? job.members.length : job.pending.length,
      members: (job.members ?? job.pending).map((m) => ({
        rank: job.members ? m.rank : (m.wantRank ?? null),
        workerId: m.workerId,
        host: m.host,
        port: m.port,
        alive: !m.conn.left && this.conns.has(m.conn),
        lastSeenMsAgo: now - m.conn.lastSeen,
      })),
      elastic: e ? { min: e.min, max: e.max, settleMs: e.settleMs } : null,
      waiting: e && job.members ? job.pending.length : 0,
      history: e?.history ?? [],
    };
  }

  /**
   * GET /status: liveness (`{ ok, jobs: <count> }`) for anyone; with `Authorization: Bearer
   * <credential>` also `details`: the one job that credential belongs to (every job for the
   * server's secret). A credential that matches no job held now is answered 401. GET /metrics
   * and the live job page (GET /?token=) are http/routes.ts's.
   */
  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    if (this.observe.handle(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/status') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const body: { ok: boolean; jobs: number; details?: JobStatus[]; error?: string } = {
      ok: true,
      jobs: this.jobs.size,
    };
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const credential = bearer(auth);
      const visible = credential === undefined ? undefined : this.visibleTo(credential);
      if (!visible) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
        res.end(JSON.stringify({ ok: false, error: 'the credential matches no job on this server' }));
        return;
      }
      body.details = visible.map((job) => this.jobStatus(job));
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  /** The jobs a bearer credential may see: its own job, or all of them for the server's secret. */
  private visibleTo(credential: string): Job[] | undefined {
    const { secret } = this.opts;
    if (secret && sameSecret(credential, secret)) return [...this.jobs.values()];
    const own = [...this.jobs.values()].find((job) => sameSecret(credential, jobCredential(secret, job.id)));
    return own && [own];
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const conn: Conn = {
      ws,
      id: this.nextConnId++,
      remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      nonce: randomBytes(32),
      lastSeen: Date.now(),
      left: false,
    };
    this.conns.add(conn);
    const authTimer = setTimeout(
      () => this.reject(conn, 'did not authenticate in time'),
      this.opts.authTimeoutMs,
    );
    ws.on('message', (data, isBinary) => {
      if (conn.refused) return;
      conn.lastSeen = Date.now();
      try {
        if (!isBinary) throw new RendezvousError('text frame');
        const msg = decode(data as Buffer);
        if (!conn.job) {
          clearTimeout(authTimer);
          this.onHello(conn, msg);
          if (conn.job) this.guard.authenticated(req.socket);
        } else {
          this.onMessage(conn, msg);
        }
      } catch (err) {
        clearTimeout(authTimer);
        this.reject(conn, (err as Error).message);
      }
    });
    ws.on('error', () => {}); // oversized frames and bad framing: 'close' follows
    ws.on('close', () => {
      clearTimeout(authTimer);
      this.conns.delete(conn);
      this.onGone(conn, 'connection closed');
    });
    ws.send(encode({ t: 'challenge', nonce: conn.nonce } satisfies ServerMessage));
  }

  /** Closes one offending connection; the jobs are not disturbed. */
  private reject(conn: Conn, why: string): void {
    if (conn.refused) return;
    conn.refused = true;
    this.refusals(
      'warn',
      `closing connection ${conn.remote}${conn.member ? ` (rank ${conn.member.rank})` : ''}: ${why}`,
    );
    conn.ws.close(1008, 'protocol error');
    setTimeout(() => conn.ws.terminate(), 1000).unref();
  }

  private onHello(conn: Conn, msg: Record<string, unknown>): void {
    if (
      msg.t !== 'hello' ||
      typeof msg.job !== 'string' ||
      msg.job.length === 0 ||
      msg.job.length > KEY_MAX
    ) {
      throw new RendezvousError('expected hello with a job id');
    }
    // The job's own credential; else the server's secret (how workers authenticated before jobs
    // had credentials of their own: accepted, but such a job is not isolated from the others).
    const { secret } = this.opts;
    const own = proofMatches(jobCredential(secret, msg.job), conn.nonce, msg.job, msg.proof);
    if (!own && !proofMatches(secret, conn.nonce, msg.job, msg.proof)) {
      conn.refused = true;
      this.refusals('warn', `authentication failed from ${conn.remote} for job ${JSON.stringify(msg.job)}`);
      conn.ws.close(4401, 'authentication failed');
      setTimeout(() => conn.ws.terminate(), 1000).unref();
      return;
    }
    conn.job = this.job(msg.job);
    if (!own && secret && !conn.job.secretUsed) {
      conn.job.secretUsed = true;
      this.opts.log(
        'warn',
        `job ${JSON.stringify(msg.job)} authenticated with the server's secret, which opens every job: give its workers their job credential instead (ringwire-rendezvous token --job ID)`,
      );
    }
    conn.ws.send(encode({ t: 'welcome' } satisfies ServerMessage));
  }

  private job(id: string): Job {
    let job = this.jobs.get(id);
    if (!job) {
      job = {
        id,
        generation: this.generations.get(id) ?? 0,
        pending: [],
        kv: new Map(),
        getWaiters: new Map(),
        barriers: new Map(),
      };
      this.jobs.set(id, job);
    }
    return job;
  }

  private onMessage(conn: Conn, msg: Record<string, unknown>): void {
    if (msg.t === 'hb') return;
    if (msg.t === 'metrics') {
      const m = conn.member;
      if (m && conn.job!.members)
        this.observe.metrics.ingest(conn.job!.id, m.rank, conn.job!.size!, msg as Untrusted);
      return;
    }
    if (msg.t !== 'req' || typeof msg.id !== 'number' || typeof msg.op !== 'string')
      throw new RendezvousError(`unexpected message ${msg.t}`);
    const id = msg.id;
    try {
      this.handle(conn, conn.job!, id, msg);
    } catch (err) {
      if (err instanceof RingwireError) this.fail(conn, id, err);
      else throw err;
    }
  }

  private handle(conn: Conn, job: Job, id: number, msg: Record<string, unknown>): void {
    switch (msg.op) {
      case 'join':
        return this.join(conn, job, id, msg);
      case 'rejoin':
        return this.rejoin(conn, job, id, msg);
      case 'leave':
        conn.left = true;
        return this.reply(conn, id, true);
      case 'set':
        job.kv.set(key(msg.key), msg.value);
        this.emit('set', { job: job.id, key: msg.key, value: msg.value });
        this.wake(job, msg.key as string);
        return this.reply(conn, id, true);
      case 'get':
        return this.get(conn, job, id, key(msg.key), msg.wait === true, timeout(msg.timeoutMs));
      case 'add': {
        const k = key(msg.key);
        const cur = job.kv.get(k) ?? 0;
        const delta = msg.delta ?? 1;
        if (typeof cur !== 'number' || typeof delta !== 'number' || !Number.isSafeInteger(delta)) {
          throw new InvalidArgumentError(
            `add needs an integer delta and an integer value at ${JSON.stringify(k)}`,
          );
        }
        job.kv.set(k, cur + delta);
        this.wake(job, k);
        return this.reply(conn, id, cur + delta);
      }
      case 'cas': {
        const k = key(msg.key);
        const cur = job.kv.get(k);
        const swapped = sameValue(cur, msg.expected);
        if (swapped) {
          job.kv.set(k, msg.value);
          this.wake(job, k);
        }
        return this.reply(conn, id, { swapped, value: swapped ? msg.value : (cur ?? null) });
      }
      case 'del':
        return this.reply(conn, id, job.kv.delete(key(msg.key)));
      case 'barrier':
        return this.barrier(conn, job, id, key(msg.name), timeout(msg.timeoutMs));
      case 'report': {
        const m = conn.member;
        if (!m || !job.members)
          throw new RendezvousError('only a member of a formed job can report a failure');
        // An elastic member waiting for the next generation reports on its old one: nothing to abort.
        if (job.elastic && !job.members.includes(m)) return this.reply(conn, id, true);
        const rank = Number.isInteger(msg.rank) ? (msg.rank as number) : m.rank;
        const code = typeof msg.code === 'string' ? msg.code : ErrorCode.ABORTED;
        const reason = String(msg.reason ?? 'failure reported');
        // Every report, not only the first that aborts the job: a launcher weighs them (ringrun's rootCause).
        this.emit('report', { job: job.id, from: m.rank, rank, reason, code });
        this.abort(job, rank, reason, code);
        return this.reply(conn, id, true);
      }
      default:
        throw new RendezvousError(`unknown op ${JSON.stringify(msg.op)}`);
    }
  }

  private reply(conn: Conn, id: number, value: unknown): void {
    if (conn.ws.readyState === conn.ws.OPEN)
      conn.ws.send(encode({ t: 'res', id, ok: true, value: value ?? null } satisfies ServerMessage));
  }

  private fail(conn: Conn, id: number, err: RingwireError): void {
    if (conn.ws.readyState === conn.ws.OPEN)
      conn.ws.send(encode({ t: 'res', id, ok: false, error: err.toJSON() } satisfies ServerMessage));
  }

  private join(conn: Conn, job: Job, id: number, msg: Record<string, unknown>): void {
    if (msg.elastic !== undefined && msg.elastic !== null) return this.elasticJoin(conn, job, id, msg);
    if (job.elastic) throw new RendezvousError(`join: job ${job.id} is elastic; this worker did not say so`);
    const { size, rank, host, port, localRank, heartbeatTimeoutMs } = msg;
    if (!Number.isInteger(size) || (size as number) < 1)
      throw new RendezvousError(`join: size must be a positive integer, got ${size}`);
    const n = size as number;
    if (
      rank !== undefined &&
      rank !== null &&
      (!Number.isInteger(rank) || (rank as number) < 0 || (rank as number) >= n)
    ) {
      throw new RendezvousError(`join: rank must be an integer in 0..${n - 1}, got ${rank}`);
    }
    if (typeof host !== 'string' || !host) throw new RendezvousError('join: host must be a non-empty string');
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)
      throw new RendezvousError(`join: bad port ${port}`);
    if (
      heartbeatTimeoutMs !== undefined &&
      heartbeatTimeoutMs !== null &&
      (!Number.isInteger(heartbeatTimeoutMs) || (heartbeatTimeoutMs as number) < 1)
    )
      throw new RendezvousError(`join: bad heartbeatTimeoutMs ${heartbeatTimeoutMs}`);
    if (conn.member) throw new RendezvousError('join: this connection has already joined');
    if (job.members) {
      throw new RendezvousError(
        `join: job ${job.id} is frozen (generation ${job.generation}, ${job.members.length} members${job.abort ? ', aborted' : ''})`,
      );
    }
    if (job.size !== undefined && job.size !== n) {
      throw new RendezvousError(
        `join: size mismatch: this worker says ${n}, the job was started with ${job.size}`,
      );
    }
    const wantRank = rank ?? undefined;
    if (wantRank !== undefined && job.pending.some((m) => m.wantRank === wantRank)) {
      throw new RendezvousError(`join: rank ${wantRank} is already taken in job ${job.id}`);
    }
    const member: Member = {
      conn,
      reqId: id,
      wantRank: wantRank as number | undefined,
      host,
      port: port as number,
      wantLocalRank: Number.isInteger(localRank) ? (localRank as number) : undefined,
      rank: -1,
      workerId: workerIdOf(msg.workerId, host, port as number),
      heartbeatTimeoutMs: Math.min(
        Math.max(this.opts.heartbeatTimeoutMs, (heartbeatTimeoutMs as number | undefined) ?? 0),
        2 ** 31 - 1,
      ),
    };
    job.size = n;
    job.pending.push(member);
    conn.member = member;
    const ms = timeout(msg.timeoutMs ?? DEFAULTS.joinTimeoutMs);
    member.timer = setTimeout(() => {
      job.pending.splice(job.pending.indexOf(member), 1);
      conn.member = undefined;
      if (job.pending.length === 0) job.size = undefined;
      const given = job.pending.map((m) => m.wantRank).filter((r) => r !== undefined);
      this.fail(
        conn,
        id,
        new RendezvousError(
          `join timed out after ${ms} ms: ${job.pending.length + 1} of ${n} workers had joined job ${job.id}${given.length ? ` (ranks given: ${given.join(', ')})` : ''}`,
        ),
      );
    }, ms);
    if (job.pending.length === n) this.form(job);
  }

  /** All workers are here: assign ranks deterministically and send everyone the same table. */
  private form(job: Job): void {
    const n = job.size!;
    const members = job.pending;
    job.pending = [];
    const byRank: Member[] = new Array(n);
    for (const m of members) if (m.wantRank !== undefined) byRank[m.wantRank] = m;
    // Unranked workers fill the free ranks grouped by host, so a host's workers get neighbouring ranks.
    const free = members
      .filter((m) => m.wantRank === undefined)
      .sort((a, b) =>
        a.host < b.host
          ? -1
          : a.host > b.host
            ? 1
            : (a.wantLocalRank ?? 1e9) - (b.wantLocalRank ?? 1e9) || a.port - b.port,
      );
    let next = 0;
    for (const m of free) {
      while (byRank[next]) next++;
      byRank[next] = m;
    }
    byRank.forEach((m, r) => (m.rank = r));
    const hosts: Record<string, number[]> = {};
    for (const m of byRank) (hosts[m.host] ??= []).push(m.rank);
    const peers: PeerInfo[] = byRank.map((m) => {
      const group = hosts[m.host];
      return {
        rank: m.rank,
        host: m.host,
        port: m.port,
        localRank: m.wantLocalRank ?? group.indexOf(m.rank),
        localSize: group.length,
      };
    });
    job.generation += 1;
    this.generations.set(job.id, job.generation);
    job.members = byRank;
    const table: PeerTable = { job: job.id, generation: job.generation, size: n, peers, hosts };
    for (const m of byRank) {
      clearTimeout(m.timer);
      this.reply(m.conn, m.reqId, { ...table, rank: m.rank });
    }
    this.opts.log('info', `job ${job.id} generation ${job.generation} formed with ${n} workers`);
    this.emit('formed', table);
  }

  // ---- elastic jobs (see elastic.ts and ELASTIC.md) ------------------------------------------

  /** The job's elastic state: kept across the job's generations, created by its first elastic member. */
  private elasticStateOf(job: Job, bounds: unknown, size: number): ElasticState {
    const b = parseBounds(bounds, size, this.opts.elasticSettleMs);
    let e = this.elasticJobs.get(job.id);
    if (!e || e.min !== b.min || e.max !== b.max) e = newElasticState(b);
    this.elasticJobs.set(job.id, e);
    return e;
  }

  /**
   * A worker joins an elastic job: a newcomer, or a member of the running generation joining the
   * next one (on the same connection or a new one, known by its workerId). It waits in `pending`
   * until the next generation forms (see tryForm) or the join times out.
   */
  private elasticJoin(conn: Conn, job: Job, id: number, msg: Record<string, unknown>): void {
    const { size, host, port, heartbeatTimeoutMs } = msg;
    if (!Number.isInteger(size) || (size as number) < 1)
      throw new RendezvousError(`join: size must be a positive integer, got ${size}`);
    if (typeof host !== 'string' || !host) throw new RendezvousError('join: host must be a non-empty string');
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)
      throw new RendezvousError(`join: bad port ${port}`);
    const b = parseBounds(msg.elastic, size as number, this.opts.elasticSettleMs);
    if (!job.elastic) {
      if (job.members || job.pending.length)
        throw new RendezvousError(`join: job ${job.id} is not elastic; this worker says it is`);
      job.elastic = this.elasticStateOf(job, msg.elastic, size as number);
    } else if (b.min !== job.elastic.min || b.max !== job.elastic.max) {
      throw new RendezvousError(
        `join: elastic bounds mismatch: this worker says ${b.min}..${b.max}, the job has ${job.elastic.min}..${job.elastic.max}`,
      );
    }
    const e = job.elastic;
    const prev = conn.member;
    if (prev && job.pending.includes(prev))
      throw new RendezvousError('join: this connection is already waiting for the next generation');
    if (prev && job.members?.includes(prev)) prev.rejoined = true;
    const workerId = workerIdOf(msg.workerId, host, port as number);
    if (job.pending.some((m) => m.workerId === workerId))
      throw new RendezvousError(
        `join: worker ${JSON.stringify(workerId)} is already waiting in job ${job.id}`,
      );
    // The same worker re-joining on a new connection: its old membership ends here.
    const old = job.members?.find((m) => m.workerId === workerId && m.conn !== conn);
    if (old) old.rejoined = true;
    const member: Member = {
      conn,
      reqId: id,
      host,
      port: port as number,
      rank: -1,
      workerId,
      arrived: ++this.arrivals,
      heartbeatTimeoutMs: Math.min(
        Math.max(this.opts.heartbeatTimeoutMs, (heartbeatTimeoutMs as number | undefined) ?? 0),
        2 ** 31 - 1,
      ),
    };
    job.size ??= size as number;
    job.pending.push(member);
    conn.member = member;
    const ms = timeout(msg.timeoutMs ?? DEFAULTS.elasticTimeoutMs);
    member.timer = setTimeout(() => {
      remove(job.pending, member);
      if (conn.member === member) conn.member = undefined;
      this.fail(
        conn,
        id,
        new TimeoutError(
          `elastic job ${job.id}: no generation formed within ${ms} ms: ${job.pending.length + 1} worker(s) waiting, ${this.expected(job).length} still running the old generation, the minimum is ${e.min} (RINGWIRE_ELASTIC_TIMEOUT_MS)`,
        ),
      );
      this.elasticChanged(job, true);
    }, ms);
    // A survivor joining again changes nothing; a newcomer restarts the settle window.
    this.elasticChanged(job, !e.order.has(workerId));
  }

  /**
   * Members of the running generation expected to join the next one: those still connected, and
   * those that left it gracefully (elastic.run closes its communicator, then joins again) less
   * than rejoinGraceMs ago.
   */
  private expected(job: Job, now = Date.now()): Member[] {
    return (job.members ?? []).filter(
      (m) =>
        !m.rejoined &&
        (m.conn.left
          ? m.leftAt === undefined || now - m.leftAt < this.opts.rejoinGraceMs
          : this.conns.has(m.conn) && m.conn.member === m),
    );
  }

  /**
   * Something happened to an elastic job's membership; `change`: one that restarts the settle
   * window (a worker lost, a newcomer, a waiting worker gone; not a survivor leaving or joining
   * again). Tells the running generation that workers wait, and forms when the rule allows.
   */
  private elasticChanged(job: Job, change: boolean): void {
    const e = job.elastic!;
    if (change) e.lastChange = Date.now();
    const running = this.expected(job).filter((m) => !m.conn.left);
    if (job.pending.length && running.length) {
      const notice = encode({
        t: 'membership',
        generation: job.generation,
        waiting: job.pending.length,
      } satisfies ServerMessage);
      for (const m of running) if (m.conn.ws.readyState === m.conn.ws.OPEN) m.conn.ws.send(notice);
    }
    this.tryForm(job);
  }

  /**
   * The formation rule: at least `min` waiting, and either `max` waiting (or, for the first
   * generation, the target size), or no member of the running generation still expected (see
   * `expected`) and the settle window passed since the last change (for the first generation,
   * DEFAULTS.elasticStartMs since the job's first join).
   */
  private tryForm(job: Job): void {
    const e = job.elastic!;
    clearTimeout(e.settleTimer);
    e.settleTimer = undefined;
    const n = job.pending.length;
    if (n < e.min || !this.jobs.has(job.id)) return;
    const first = e.history.length === 0 && e.order.size === 0;
    if (n >= e.max || (first && n >= job.size!)) return this.formElastic(job);
    const now = Date.now();
    const expected = this.expected(job, now);
    // A member still running (or leaving: its close comes next) will join or drop: each calls here.
    if (expected.some((m) => m.leftAt === undefined)) return;
    const at = Math.max(
      first ? e.started + DEFAULTS.elasticStartMs : e.lastChange + e.settleMs,
      ...expected.map((m) => m.leftAt! + this.opts.rejoinGraceMs),
    );
    if (at <= now) return this.formElastic(job);
    e.settleTimer = setTimeout(() => this.tryForm(job), at - now);
  }

  /** Forms generation g+1 from the waiting workers: dense ranks, survivors first; records why. */
  private formElastic(job: Job): void {
    const e = job.elastic!;
    const chosen = nextOrder(job.pending, e.order, e.max);
    job.pending = job.pending.filter((m) => !chosen.includes(m));
    chosen.forEach((m, r) => (m.rank = r));
    const hosts: Record<string, number[]> = {};
    for (const m of chosen) (hosts[m.host] ??= []).push(m.rank);
    const peers: PeerInfo[] = chosen.map((m) => ({
      rank: m.rank,
      host: m.host,
      port: m.port,
      localRank: hosts[m.host].indexOf(m.rank),
      localSize: hosts[m.host].length,
      workerId: m.workerId,
    }));
    job.generation += 1;
    this.generations.set(job.id, job.generation);
    const entry = record(
      e,
      job.generation,
      chosen.map((m) => m.workerId),
    );
    e.history.push(entry);
    e.order = new Map(chosen.map((m) => [m.workerId, m.rank]));
    e.leftWhy.clear();
    // The old generation's failure and rendezvous-side barriers end with it.
    for (const m of job.members ?? []) clearTimeout(m.grace);
    job.members = chosen;
    job.size = chosen.length;
    job.abort = undefined;
    for (const arrived of job.barriers.values()) for (const w of arrived.values()) clearTimeout(w.timer);
    job.barriers.clear();
    const table: PeerTable = { job: job.id, generation: job.generation, size: chosen.length, peers, hosts };
    for (const m of chosen) {
      clearTimeout(m.timer);
      this.reply(m.conn, m.reqId, { ...table, rank: m.rank });
    }
    this.opts.log(
      'info',
      `job ${job.id} generation ${job.generation} formed with ${chosen.length} workers (${entry.reason})`,
    );
    this.emit('formed', { ...table, elastic: { min: e.min, max: e.max }, change: entry });
  }

  /**
   * An elastic member's connection closed: a waiting one stops waiting; a running one that left
   * gracefully is expected to join again for a while, one that did not is lost.
   */
  private elasticGone(job: Job, conn: Conn, m: Member, why: string): void {
    let change = true;
    if (job.pending.includes(m)) {
      clearTimeout(m.timer);
      remove(job.pending, m);
    } else if (job.members?.includes(m) && !m.rejoined) {
      for (const arrived of job.barriers.values())
        for (const [r, w] of arrived) if (w.conn === conn) clearTimeout(w.timer), arrived.delete(r);
      job.elastic!.leftWhy.set(m.workerId, conn.left ? 'left' : why);
      if (conn.left) (m.leftAt = Date.now()), (change = false);
    }
    this.elasticForget(job);
    if (this.jobs.has(job.id)) this.elasticChanged(job, change);
  }

  /** Forgets an elastic job once nobody waits and no member is expected back (its state stays in elasticJobs). */
  private elasticForget(job: Job): void {
    if (job.pending.length || !this.jobs.has(job.id)) return;
    const expected = this.expected(job);
    if (expected.some((m) => !m.conn.left)) return;
    if (expected.length) {
      setTimeout(() => this.elasticForget(job), this.opts.rejoinGraceMs).unref();
      return;
    }
    if (![...this.conns].some((c) => c.job === job)) {
      this.clearTimers(job);
      this.jobs.delete(job.id);
    }
  }

  private get(conn: Conn, job: Job, id: number, k: string, wait: boolean, ms: number): void {
    if (job.kv.has(k) || !wait) return this.reply(conn, id, job.kv.get(k) ?? null);
    if (job.abort) throw new AbortedError(`job ${job.id} was aborted: ${job.abort.reason}`);
    const list = job.getWaiters.get(k) ?? [];
    const waiter: Waiter = {
      conn,
      id,
      timer: setTimeout(() => {
        remove(list, waiter);
        this.fail(conn, id, new TimeoutError(`get ${JSON.stringify(k)}: no value after ${ms} ms`));
      }, ms),
    };
    list.push(waiter);
    job.getWaiters.set(k, list);
  }

  private wake(job: Job, k: string): void {
    const list = job.getWaiters.get(k);
    if (!list) return;
    job.getWaiters.delete(k);
    for (const w of list) {
      clearTimeout(w.timer);
      this.reply(w.conn, w.id, job.kv.get(k));
    }
  }

  private barrier(conn: Conn, job: Job, id: number, name: string, ms: number): void {
    const m = conn.member;
    if (!m || !job.members) throw new RendezvousError('barrier: join a formed job first');
    if (job.abort) throw new AbortedError(`job ${job.id} was aborted: ${job.abort.reason}`);
    const arrived = job.barriers.get(name) ?? new Map<number, Waiter>();
    if (arrived.has(m.rank))
      throw new RendezvousError(`barrier ${JSON.stringify(name)}: rank ${m.rank} is already waiting`);
    job.barriers.set(name, arrived);
    arrived.set(m.rank, {
      conn,
      id,
      timer: setTimeout(() => {
        arrived.delete(m.rank);
        const missing = [...Array(job.size).keys()].filter((r) => !arrived.has(r) && r !== m.rank);
        this.fail(
          conn,
          id,
          new TimeoutError(
            `barrier ${JSON.stringify(name)} timed out after ${ms} ms; ranks not arrived: ${missing.join(', ')}`,
            { ranks: missing },
          ),
        );
      }, ms),
    });
    if (arrived.size === job.size) {
      job.barriers.delete(name);
      for (const w of arrived.values()) {
        clearTimeout(w.timer);
        this.reply(w.conn, w.id, true);
      }
    }
  }

  /** Declares a job failed and tells every member; the first reason wins. */
  private abort(job: Job, rank: number, reason: string, code: string): void {
    if (job.abort) return;
    job.abort = { rank, reason, code };
    this.opts.log('warn', `job ${job.id}: ${reason}`);
    for (const m of job.members ?? []) {
      if (m.conn.ws.readyState === m.conn.ws.OPEN)
        m.conn.ws.send(encode({ t: 'abort', rank, reason, code } satisfies ServerMessage));
    }
    const err = new AbortedError(`job ${job.id} was aborted: ${reason}`, { rank });
    for (const list of job.getWaiters.values())
      for (const w of list) clearTimeout(w.timer), this.fail(w.conn, w.id, err);
    for (const arrived of job.barriers.values())
      for (const w of arrived.values()) clearTimeout(w.timer), this.fail(w.conn, w.id, err);
    job.getWaiters.clear();
    job.barriers.clear();
    // An elastic job goes on: the abort ends its current generation only.
    const elastic = job.elastic ? { elastic: true, generation: job.generation } : {};
    this.emit('abort', { job: job.id, rank, reason, code, ...elastic });
  }

  private onGone(conn: Conn, why: string): void {
    const job = conn.job;
    if (!job) return;
    const m = conn.member;
    for (const [k, list] of job.getWaiters) {
      const kept = list.filter((w) => (w.conn === conn ? (clearTimeout(w.timer), false) : true));
      if (kept.length) job.getWaiters.set(k, kept);
      else job.getWaiters.delete(k);
    }
    if (m && job.elastic) {
      this.elasticGone(job, conn, m, why);
    } else if (m && !job.members) {
      clearTimeout(m.timer);
      remove(job.pending, m);
      if (job.pending.length === 0) job.size = undefined;
    } else if (m && job.members) {
      // Its barrier arrival goes with the connection: a member that comes back sends it again.
      for (const arrived of job.barriers.values())
        for (const [r, w] of arrived) if (w.conn === conn) clearTimeout(w.timer), arrived.delete(r);
      if (!conn.left) this.awaitReturn(job, m, why);
      this.forgetIfGone(job);
    }
    if (
      !job.members &&
      job.pending.length === 0 &&
      job.kv.size === 0 &&
      ![...this.conns].some((c) => c.job === job)
    ) {
      this.jobs.delete(job.id);
    }
  }

  /**
   * A member of a formed job re-registers after its connection dropped, or after this server
   * restarted and lost the job: same rank, size, generation and address. A restarted server
   * rebuilds the job's membership from these as they come, so /status, barriers and aborts reach
   * everyone again (the key-value store does not survive a restart). A member that missed an
   * abort while away is told at once.
   */
  private rejoin(conn: Conn, job: Job, id: number, msg: Record<string, unknown>): void {
    const { rank, size, generation, host, port, localRank } = msg;
    if (!Number.isInteger(size) || (size as number) < 1)
      throw new RendezvousError(`rejoin: size must be a positive integer, got ${size}`);
    const n = size as number;
    if (!Number.isInteger(rank) || (rank as number) < 0 || (rank as number) >= n)
      throw new RendezvousError(`rejoin: rank must be an integer in 0..${n - 1}, got ${rank}`);
    if (!Number.isInteger(generation) || (generation as number) < 1)
      throw new RendezvousError(`rejoin: generation must be a positive integer, got ${generation}`);
    if (typeof host !== 'string' || !host)
      throw new RendezvousError('rejoin: host must be a non-empty string');
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)
      throw new RendezvousError(`rejoin: bad port ${port}`);
    if (conn.member) throw new RendezvousError('rejoin: this connection has already joined');
    const r = rank as number;
    if (!job.elastic && msg.elastic) job.elastic = this.elasticStateOf(job, msg.elastic, n);
    if (!job.members) {
      if (job.pending.length && !job.elastic)
        throw new RendezvousError(`rejoin: job ${job.id} is forming generation ${job.generation + 1}`);
      job.members = [];
      job.size = n;
      job.generation = generation as number;
      this.generations.set(job.id, job.generation);
      this.opts.log('info', `job ${job.id} generation ${job.generation}: restoring its membership`);
    }
    if (job.generation !== generation || job.size !== n) {
      throw new RendezvousError(
        `rejoin: job ${job.id} is at generation ${job.generation} with ${job.size} members, not generation ${generation} with ${n}`,
      );
    }
    let m = job.members.find((x) => x.rank === r);
    if (m && (m.conn.left || m.host !== host || m.port !== port)) {
      throw new RendezvousError(
        `rejoin: rank ${r} of job ${job.id} ${m.conn.left ? 'has left' : `is ${m.host}:${m.port}, not ${host}:${port}`}`,
      );
    }
    if (m) {
      clearTimeout(m.grace);
      m.grace = undefined;
      const old = m.conn;
      // A half-open old connection the server has not seen drop yet: it no longer speaks for the member.
      if (this.conns.has(old)) (old.member = undefined), old.ws.terminate();
      m.conn = conn;
    } else {
      const local = Number.isInteger(localRank) ? (localRank as number) : undefined;
      const heartbeatTimeoutMs = this.opts.heartbeatTimeoutMs;
      m = {
        conn,
        reqId: id,
        wantRank: r,
        host,
        port: port as number,
        wantLocalRank: local,
        rank: r,
        workerId: workerIdOf(msg.workerId, host, port as number),
        heartbeatTimeoutMs,
      };
      job.members.push(m);
      job.members.sort((a, b) => a.rank - b.rank);
    }
    conn.member = m;
    // A restarted server learns an elastic generation's order from its members coming back.
    if (job.elastic && !job.elastic.history.length) job.elastic.order.set(m.workerId, m.rank);
    this.reply(conn, id, true);
    const a = job.abort;
    if (a) conn.ws.send(encode({ t: 'abort', ...a } satisfies ServerMessage));
  }

  /** A member's connection dropped: it has rejoinGraceMs to re-register before the job is aborted for it. */
  private awaitReturn(job: Job, m: Member, why: string): void {
    if (job.abort) return;
    const ms = this.opts.rejoinGraceMs;
    clearTimeout(m.grace);
    m.grace = setTimeout(() => {
      m.grace = undefined;
      this.abort(
        job,
        m.rank,
        `rank ${m.rank} (${m.host}) lost: ${why}, and it did not re-register within ${ms} ms`,
        ErrorCode.PEER_LOST,
      );
      this.forgetIfGone(job);
    }, ms);
    m.grace.unref();
  }

  /** Forgets a formed job once every member has left or is gone for good; the next join under its id starts generation g+1. */
  private forgetIfGone(job: Job): void {
    if (job.elastic && job.pending.length) return;
    if (job.members?.every((x) => x.conn.left || (!this.conns.has(x.conn) && !x.grace))) {
      this.clearTimers(job);
      this.jobs.delete(job.id);
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns) {
      const m = c.member;
      // (An elastic worker waiting for the next generation has no generation to abort.)
      if (m && c.job?.members?.includes(m) && !c.left && now - c.lastSeen > m.heartbeatTimeoutMs) {
        this.opts.log('warn', `rank ${m.rank} missed heartbeats for ${m.heartbeatTimeoutMs} ms`);
        this.abort(
          c.job,
          m.rank,
          `rank ${m.rank} (${m.host}) lost: no heartbeat for ${m.heartbeatTimeoutMs} ms`,
          ErrorCode.PEER_LOST,
        );
        c.ws.terminate();
      }
    }
  }

  private clearTimers(job: Job): void {
    for (const m of job.members ?? []) clearTimeout(m.grace);
    for (const m of job.pending) clearTimeout(m.timer);
    clearTimeout(job.elastic?.settleTimer);
    for (const list of job.getWaiters.values()) for (const w of list) clearTimeout(w.timer);
    for (const arrived of job.barriers.values()) for (const w of arrived.values()) clearTimeout(w.timer);
  }
}

function key(k: unknown): string {
  if (typeof k !== 'string' || k.length === 0 || k.length > KEY_MAX)
    throw new InvalidArgumentError(`key must be a string of 1..${KEY_MAX} characters`);
  return k;
}

function timeout(ms: unknown): number {
  if (ms === undefined || ms === null) return DEFAULTS.waitTimeoutMs;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0)
    throw new InvalidArgumentError(`timeoutMs must be a positive number, got ${ms}`);
  return Math.min(ms, 2 ** 31 - 1);
}

/** Constant-time equality of two strings of any length (compared as SHA-256 digests). */
function sameSecret(a: string, b: string): boolean {
  const digest = (x: string) => createHash('sha256').update(x).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** A member's stable identity: the one it gave (bounded), else its address. */
function workerIdOf(given: unknown, host: unknown, port: number): string {
  return typeof given === 'string' && given.length > 0 && given.length <= KEY_MAX ? given : `${host}:${port}`;
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

function sameValue(a: unknown, b: unknown): boolean {
  if ((a === undefined || a === null) && (b === undefined || b === null)) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.from(a).equals(Buffer.from(b));
  return a === b;
}
