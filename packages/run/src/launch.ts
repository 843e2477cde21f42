import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsc, statSync } from 'node:fs';
import { hostname, constants as osc } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import {
  ENV,
  escapeLog,
  InvalidArgumentError,
  LAUNCHER_ENV,
  readEnv,
  resolveHeartbeatTimeoutMs,
} from '@ringwire/common';
import { jobCredential, type PeerTable, RendezvousServer } from '@ringwire/rendezvous';
import { COUNTERS_KEY, type CounterValues } from 'ringwire';
import { assertCanListen, chooseAddress } from './address.js';
import { type FailureReport, rootCause, type WorkerEnd } from './cause.js';
import { type HostSlots, type Placement, placeRanks, UsageError } from './hosts.js';
import type { LineSink } from './output.js';
import { splitWords } from './shell.js';
import { summaryLines, type WorkerSummary } from './summary.js';
import { mergeTimelines } from './timeline.js';
import { jobTls, type TlsFiles } from './tls-ca.js';
import { Watchdog } from './watchdog.js';

export type { TlsFiles } from './tls-ca.js';

import { type WorkerContext, WorkerProcess } from './worker.js';

/** After a worker fails, the others get this long to exit on their own before SIGTERM (capped by the grace). */
const SETTLE_MS = 1_000;
/** How often the processes each worker started are collected (see ProcessTree). */
const SCAN_MS = 500;

export interface LaunchOptions {
  /** The worker program and its arguments, run once per rank. */
  command: string;
  args?: string[];
  /** Number of workers; defaults to the total slots of `hosts`. Required without hosts. */
  np?: number;
  /** Hosts in rank order; those naming this machine run without ssh. Default: all local. */
  hosts?: HostSlots[];
  /** Extra environment for every worker (`-x`). Remote workers get only these and the RINGWIRE_* contract. */
  env?: Record<string, string>;
  /** Bound on the whole job; when hit, workers are stopped and the result code is 124. */
  timeoutMs?: number;
  /** Every rank must have joined the rendezvous within this time, or the job is stopped (code 124). */
  startTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping workers. Default 5000. */
  graceMs?: number;
  /**
   * A rank silent this long (frozen) is declared lost; given to the rendezvous and, as
   * RINGWIRE_HEARTBEAT_TIMEOUT_MS, to every worker. Default: resolveHeartbeatTimeoutMs over
   * ringrun's environment and `env`.
   */
  heartbeatTimeoutMs?: number;
  /** Rendezvous listen address; see chooseAddress for the default. */
  bind?: string;
  /** ssh command as argv, e.g. ['ssh', '-i', 'key']. Default: $RINGRUN_SSH split into words, or ['ssh']. */
  ssh?: string[];
  /** Working directory, here and (the same path) on remote hosts. Default process.cwd(). */
  cwd?: string;
  /** Print the launch plan and rendezvous address. */
  verbose?: boolean;
  /**
   * Print the URL of the rendezvous's live job page at start (`http://<address>:<port>/?token=`,
   * with this job's credential; the rendezvous listens on `bind`, see chooseAddress).
   */
  dashboard?: boolean;
  /** Where tagged worker output goes. Default process.stdout / process.stderr. */
  stdout?: LineSink;
  stderr?: LineSink;
  /** ringrun's own messages. Default: `ringrun: ...` lines on process.stderr. */
  log?: (message: string) => void;
  /** Aborting stops every worker; a signal name as the reason ('SIGINT') gives code 128+n. */
  signal?: AbortSignal;
  jobId?: string;
  /** Record a Chrome trace of the job into this file: the ranks write parts, merged at the end. */
  timeline?: string;
  /** Print one line per worker at the end: exit, wall time, bytes sent, mean busbw. */
  summary?: boolean;
  /**
   * TLS on every link of the job (wss rendezvous, mutual TLS between peers): PEM files (paths
   * every host can read), or `true` for a CA and certificate made for this run alone (in a
   * private temp dir, removed at the end). Default: the RINGWIRE_TLS_* files in the environment
   * when set, else none.
   */
  tls?: boolean | TlsFiles;
}

export interface LaunchResult {
  /**
   * 0 when every worker succeeded; else the root-cause worker's code (128+n for a signal; the first
   * failed worker's when ringrun had to stop the cause), 124 for a timeout, 127 for a missing command.
   */
  code: number;
  /** The rank at the root of the failure (see rootCause). */
  failedRank?: number;
  /** The signal that killed the failed worker. */
  signal?: NodeJS.Signals;
  /** What went wrong, as printed. */
  reason?: string;
}

/** The variables ringrun sets for every worker (see DESIGN.md, Contracts); `-x` may not override them. */
export const CONTRACT_VARS: readonly string[] = LAUNCHER_ENV;

/** A started worker and where it runs. */
interface Running {
  p: Placement;
  proc: WorkerProcess;
}

/** Starts the job (rendezvous, every worker, output) and resolves when it has ended. */
export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  const plan = placeRanks(options.np, options.hosts);
  const graceMs = options.graceMs ?? 5_000;
  const cwd = resolve(options.cwd ?? process.cwd());
  const args = options.args ?? [];
  const extraEnv = options.env ?? {};
  const log = options.log ?? ((m: string) => process.stderr.write(`ringrun: ${m}\n`));
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const ssh = options.ssh ?? splitWords(readEnv('ringrunSsh') ?? 'ssh');
  for (const k of Object.keys(extraEnv)) {
    if (CONTRACT_VARS.includes(k)) throw new UsageError(`-x ${k}: ringrun sets it for every worker`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new UsageError(`-x: bad variable name ${JSON.stringify(k)}`);
  }
  if (!options.command) throw new UsageError('no command given');
  const localEnv = { ...process.env, ...extraEnv };
  const heartbeatTimeoutMs = usage(() =>
    resolveHeartbeatTimeoutMs({ heartbeatTimeoutMs: options.heartbeatTimeoutMs }, localEnv),
  );
  if (plan.some((p) => p.local) && !findExecutable(options.command, cwd, localEnv.PATH)) {
    const reason = `command not found: ${options.command}`;
    log(reason);
    return { code: 127, reason };
  }
  if (options.signal?.aborted)
    return { code: signalCode(options.signal.reason), reason: 'aborted before start' };

  const remoteHosts = [...new Set(plan.filter((p) => !p.local).map((p) => p.host))];
  const { addr, tls, jobId, token, server, url } = await startRendezvous(
    options,
    remoteHosts,
    localEnv,
    cwd,
    heartbeatTimeoutMs,
    log,
  );
  if (options.verbose) {
    log(
      `job ${jobId}: ${plan.length} workers, rendezvous ${url}${addr.listen !== addr.advertise ? ` (listening on ${addr.listen})` : ''}`,
    );
    for (const p of plan)
      log(
        `  rank ${p.rank} on ${p.host} (local rank ${p.localRank} of ${p.localSize}${p.local ? '' : `, via ${ssh.join(' ')}`})`,
      );
    log(`  command: ${[options.command, ...args].join(' ')} (cwd ${cwd})`);
  }

  let result: LaunchResult | undefined;
  let stopping = false;
  let signalled = false;
  let settleTimer: NodeJS.Timeout | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const workers: Running[] = [];
  const running = () => workers.filter((w) => !w.proc.exited);
  // The evidence for the root cause of a failure: exits and failure reports in the order seen.
  const ends: WorkerEnd[] = [];
  const summaries: WorkerSummary[] = [];
  // The ranks' parts are path.<rank>.json beside it, the same path on every host (cwd-relative).
  const timeline = options.timeline ?? readEnv('timeline', localEnv);
  const timelinePath = timeline && resolve(cwd, timeline);
  const reports: FailureReport[] = [];

  // Survives ringrun being SIGKILLed and stops what ringrun started (see watchdogSource); the
  // descendants that lead their own group are its too.
  const watchdog = new Watchdog(graceMs);
  const scan = () => watchdog.scan(running().flatMap((w) => (w.proc.tree ? [w.proc.tree] : [])));
  const scanTimer = setInterval(scan, SCAN_MS);
  scanTimer.unref();

  /** SIGTERM to every running worker and all it started, SIGKILL after the grace period. */
  const signalAll = () => {
    if (signalled) return;
    signalled = true;
    clearTimeout(settleTimer);
    scan(); // while each tree is intact: a child's parent link goes when its parent dies
    for (const { p, proc } of running()) {
      proc.stopped = true;
      if (p.local) proc.kill('SIGTERM');
      else proc.child.stdin?.end(); // the remote wrapper stops the worker when ssh's stdin closes
    }
    killTimer = setTimeout(() => {
      scan();
      for (const w of running()) w.proc.kill('SIGKILL');
    }, graceMs);
  };
  /**
   * Ends the job. `why` (a timeout, a signal) is printed and stops the workers at once; without
   * it a worker failed, and the others get SETTLE_MS to exit on their own first, so that the
   * rank at the root of the failure is seen with its own exit code. The first reason wins.
   */
  const stop = (why?: LaunchResult) => {
    if (why) {
      if (!stopping && why.reason) log(why.reason);
      if (!stopping) result = why;
      stopping = true;
      return signalAll();
    }
    if (stopping) return;
    stopping = true;
    settleTimer = setTimeout(signalAll, Math.min(SETTLE_MS, graceMs));
  };
  const untrigger = stopTriggers(options, stop, () => running().map((w) => w.proc));

  let formed = false;
  const onFormed = (table: PeerTable) => {
    if (table.job !== jobId) return;
    formed = true;
    clearTimeout(startTimer);
    if (options.verbose)
      log(`all ${table.size} ranks joined the rendezvous (generation ${table.generation})`);
  };
  type Report = { job: string; from?: number; rank: number; reason: string; code: string };
  const onReport = ({ job, ...r }: Report) => {
    if (job === jobId) reports.push({ ...r, stopped: signalled });
  };
  const onJobAbort = (a: Report) => {
    if (a.job !== jobId) return;
    onReport(a);
    if (options.verbose) log(`rendezvous: job aborted: ${escapeLog(a.reason, 1000)}`);
  };
  // Each rank leaves its counters in the rendezvous as it closes (see the engine's close).
  const counters = new Map<number, CounterValues>();
  const onSet = ({ job, key, value }: { job: string; key: unknown; value: unknown }) => {
    if (job !== jobId || typeof key !== 'string' || !key.startsWith(COUNTERS_KEY)) return;
    const c = countersOf(value);
    if (c && String(c.rank) === key.slice(COUNTERS_KEY.length)) counters.set(c.rank, c);
  };
  server.on('formed', onFormed);
  server.on('abort', onJobAbort);
  server.on('report', onReport);
  server.on('set', onSet);
  const startTimer = options.startTimeoutMs
    ? setTimeout(() => {
        if (formed) return;
        const joined = joinedRanks(server, jobId);
        const missing = plan.map((p) => p.rank).filter((r) => !joined.includes(r));
        stop({
          code: 124,
          reason: `start timeout: not every rank joined the rendezvous within ${options.startTimeoutMs! / 1000} s; ranks never joined: ${missing.join(', ')} (${joined.length} of ${plan.length} joined)`,
        });
      }, options.startTimeoutMs)
    : undefined;
  const ctx: WorkerContext = {
    command: options.command,
    args,
    cwd,
    localEnv,
    extraEnv,
    token,
    ssh,
    graceMs,
    out,
    err,
    watchdog,
  };
  const finished = plan.map((p) => {
    const env: Record<string, string> = {
      RINGWIRE_RANK: String(p.rank),
      RINGWIRE_SIZE: String(plan.length),
      RINGWIRE_LOCAL_RANK: String(p.localRank),
      RINGWIRE_LOCAL_SIZE: String(p.localSize),
      RINGWIRE_RENDEZVOUS: url,
      RINGWIRE_JOB_ID: jobId,
      [ENV.heartbeatTimeoutMs.name]: String(heartbeatTimeoutMs),
      ...(timelinePath ? { [ENV.timeline.name]: timelinePath } : {}),
      ...tls?.env,
    };
    const started = Date.now();
    const proc = new WorkerProcess(
      ctx,
      String(p.rank),
      p.host,
      p.local,
      env,
      ({ code, signal, spawnError }) => {
        summaries.push({ rank: p.rank, host: p.host, code, signal, wallMs: Date.now() - started });
        ends.push({ p, code, signal, spawnError, stopped: proc.stopped });
        if (!proc.stopped && (spawnError !== undefined || code !== 0)) stop();
      },
    );
    workers.push({ p, proc });
    return proc.closed;
  });

  await Promise.all(finished);
  clearInterval(scanTimer);
  clearTimeout(settleTimer);
  clearTimeout(killTimer);
  clearTimeout(startTimer);
  untrigger();
  watchdog.close();
  server.off('formed', onFormed);
  server.off('abort', onJobAbort);
  server.off('report', onReport);
  server.off('set', onSet);
  await server.close();
  if (timelinePath) {
    try {
      const missing = mergeTimelines(
        timelinePath,
        plan.map((p) => p.rank),
      );
      if (missing.length) log(`timeline: ${timelinePath} lacks ${missing.join('; ')}`);
      else if (options.verbose) log(`timeline written to ${timelinePath}`);
    } catch (e) {
      log(`timeline: cannot write ${timelinePath}: ${(e as Error).message}`);
    }
  }
  if (options.summary)
    for (const line of summaryLines(summaries.map((w) => ({ ...w, counters: counters.get(w.rank) }))))
      log(line);
  tls?.remove();
  if (result) return result;
  // Decided once every worker has ended: the cause's own exit and the others' come in any order.
  const verdict = rootCause(ends, reports);
  if (!verdict) return { code: 0 };
  for (const line of verdict.lines) log(line);
  const { lines: _, ...failed } = verdict;
  return failed;
}

/** A rank's counters as it reported them (from the network: checked), or undefined. */
function countersOf(v: unknown): CounterValues | undefined {
  const c = v as CounterValues;
  const fields = [c?.rank, c?.ops, c?.bytesSent, c?.busBytes, c?.busyMs];
  return fields.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0) ? c : undefined;
}

/**
 * The job's embedded rendezvous, as both launchers start it: an address the remote hosts reach,
 * the job's TLS (wss) if any, a fresh secret per run (the workers get only their job's credential
 * derived from it), listening; prints the live job page's URL with --dashboard.
 */
export async function startRendezvous(
  options: LaunchOptions,
  remoteHosts: string[],
  localEnv: NodeJS.ProcessEnv,
  cwd: string,
  heartbeatTimeoutMs: number,
  log: (m: string) => void,
): Promise<{
  addr: Awaited<ReturnType<typeof chooseAddress>>;
  tls: ReturnType<typeof jobTls>;
  jobId: string;
  token: string;
  server: RendezvousServer;
  url: string;
}> {
  const addr = await chooseAddress(options.bind, remoteHosts);
  const tls = usage(() => jobTls(options.tls, localEnv, cwd, remoteHosts.length > 0, log));
  const secret = randomBytes(32).toString('hex');
  const jobId = options.jobId ?? `ringrun-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const token = jobCredential(secret, jobId);
  const server = new RendezvousServer({
    host: addr.listen,
    secret,
    heartbeatTimeoutMs,
    log: (level, m) => level !== 'debug' && level !== 'info' && log(`rendezvous ${level}: ${m}`),
    tls: tls?.material,
  });
  await assertCanListen(addr.listen);
  const { port } = await server.listen();
  const url = `${tls ? 'wss' : 'ws'}://${addr.advertise.includes(':') ? `[${addr.advertise}]` : addr.advertise}:${port}`;
  if (options.dashboard) log(`live job page: ${url.replace(/^ws/, 'http')}/?token=${token}`);
  return { addr, tls, jobId, token, server, url };
}

/** Runs `f`, reporting a malformed value (an InvalidArgumentError) as bad usage. */
export function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof InvalidArgumentError && !(err instanceof UsageError))
      throw new UsageError(err.message);
    throw err;
  }
}

/**
 * What ends a job from outside its workers: the caller's AbortSignal and the job timeout stop
 * it, and this process exiting kills every worker still running (nothing it started may outlive
 * it). Returns the function that removes them once the job has ended.
 */
export function stopTriggers(
  options: Pick<LaunchOptions, 'signal' | 'timeoutMs'>,
  stop: (why: LaunchResult) => void,
  running: () => WorkerProcess[],
): () => void {
  const onProcessExit = () => {
    for (const w of running()) w.kill('SIGKILL');
  };
  process.on('exit', onProcessExit);
  const { signal, timeoutMs } = options;
  const onAbort = () =>
    stop({
      code: signalCode(signal!.reason),
      reason: `${typeof signal!.reason === 'string' ? signal!.reason : 'aborted'}: stopping ${running().length} workers`,
    });
  signal?.addEventListener('abort', onAbort, { once: true });
  const jobTimer = timeoutMs
    ? setTimeout(
        () =>
          stop({
            code: 124,
            reason: `timeout: the job ran longer than ${timeoutMs / 1000} s; stopping ${running().length} workers`,
          }),
        timeoutMs,
      )
    : undefined;
  return () => {
    clearTimeout(jobTimer);
    signal?.removeEventListener('abort', onAbort);
    process.removeListener('exit', onProcessExit);
  };
}

/** The exit code for being stopped by an abort whose reason names a signal (130 otherwise). */
export function signalCode(reason: unknown): number {
  const n = typeof reason === 'string' ? osc.signals[reason as NodeJS.Signals] : undefined;
  return n ? 128 + n : 130;
}

/** Ranks that have joined the rendezvous so far (workers pass their rank from RINGWIRE_RANK). */
function joinedRanks(server: RendezvousServer, jobId: string): number[] {
  const status = server.status() as { jobs: { id: string; members: { rank: number | null }[] }[] };
  const job = status.jobs.find((j) => j.id === jobId);
  return (job?.members ?? [])
    .map((m) => m.rank)
    .filter((r): r is number => r !== null)
    .sort((a, b) => a - b);
}

/** Like the shell's lookup: a path is checked as is, a bare name is searched on PATH. */
export function findExecutable(command: string, cwd: string, path = ''): string | undefined {
  const candidates = command.includes('/')
    ? [isAbsolute(command) ? command : join(cwd, command)]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, command));
  for (const c of candidates) {
    try {
      accessSync(c, fsc.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not here
    }
  }
  return undefined;
}
