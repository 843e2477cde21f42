import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsc, statSync } from 'node:fs';
import { hostname, constants as osc } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import {
  ENV,
  InvalidArgumentError,
  LAUNCHER_ENV,
  readEnv,
  resolveHeartbeatTimeoutMs,
} from '@ringwire/common';
import { jobCredential, type PeerTable, RendezvousServer } from '@ringwire/rendezvous';
import { assertCanListen, chooseAddress } from './address.js';
import { type HostSlots, type Placement, placeRanks, UsageError } from './hosts.js';
import { type LineSink, LineTagger } from './output.js';
import { remoteCommand, watchdogSource } from './remote.js';
import { splitWords } from './shell.js';

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
  /** Where tagged worker output goes. Default process.stdout / process.stderr. */
  stdout?: LineSink;
  stderr?: LineSink;
  /** ringrun's own messages. Default: `ringrun: ...` lines on process.stderr. */
  log?: (message: string) => void;
  /** Aborting stops every worker; a signal name as the reason ('SIGINT') gives code 128+n. */
  signal?: AbortSignal;
  jobId?: string;
}

export interface LaunchResult {
  /** 0 when every worker succeeded; else the first failed worker's code (128+n for a signal), 124 for a timeout, 127 for a missing command. */
  code: number;
  failedRank?: number;
  /** The signal that killed the failed worker. */
  signal?: NodeJS.Signals;
  /** What went wrong, as printed. */
  reason?: string;
}

/** The variables ringrun sets for every worker (see DESIGN.md, Contracts); `-x` may not override them. */
export const CONTRACT_VARS: readonly string[] = LAUNCHER_ENV;

interface Worker {
  p: Placement;
  child: ChildProcess;
  pid?: number;
  exited: boolean;
}

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
  const addr = await chooseAddress(options.bind, remoteHosts);
  // A fresh secret per run; the workers get only their job's credential derived from it.
  const secret = randomBytes(32).toString('hex');
  const jobId = options.jobId ?? `ringrun-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const token = jobCredential(secret, jobId);
  const server = new RendezvousServer({
    host: addr.listen,
    secret,
    heartbeatTimeoutMs,
    log: (level, m) => level !== 'debug' && level !== 'info' && log(`rendezvous ${level}: ${m}`),
  });
  await assertCanListen(addr.listen);
  const { port } = await server.listen();
  const url = `ws://${addr.advertise.includes(':') ? `[${addr.advertise}]` : addr.advertise}:${port}`;
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
  let killTimer: NodeJS.Timeout | undefined;
  const workers: Worker[] = [];
  const running = () => workers.filter((w) => !w.exited);

  // Survives ringrun being SIGKILLed and stops what ringrun started (see watchdogSource).
  const watchdog = spawn(process.execPath, ['-e', watchdogSource(graceMs)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.stdin!.on('error', () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();

  /** Records why the job ends (the first reason wins) and stops every worker still running. */
  const stop = (why: LaunchResult, quiet = false) => {
    if (stopping) return;
    stopping = true;
    result = why;
    if (!quiet && why.reason) log(why.reason);
    for (const w of running()) {
      if (w.p.local) killGroup(w.pid, 'SIGTERM');
      else w.child.stdin?.end(); // the remote wrapper stops the worker when ssh's stdin closes
    }
    killTimer = setTimeout(() => {
      for (const w of running()) killGroup(w.pid, 'SIGKILL');
    }, graceMs);
  };
  // Last resort on any exit path of this process: nothing it started may outlive it.
  const onProcessExit = () => {
    for (const w of running()) killGroup(w.pid, 'SIGKILL');
  };
  process.on('exit', onProcessExit);

  const onAbort = () =>
    stop({
      code: signalCode(options.signal!.reason),
      reason: `${typeof options.signal!.reason === 'string' ? options.signal!.reason : 'aborted'}: stopping ${running().length} workers`,
    });
  options.signal?.addEventListener('abort', onAbort, { once: true });

  let formed = false;
  const onFormed = (table: PeerTable) => {
    if (table.job !== jobId) return;
    formed = true;
    clearTimeout(startTimer);
    if (options.verbose)
      log(`all ${table.size} ranks joined the rendezvous (generation ${table.generation})`);
  };
  const onJobAbort = (a: { job: string; rank: number; reason: string }) => {
    if (a.job === jobId && options.verbose) log(`rendezvous: job aborted: ${a.reason}`);
  };
  server.on('formed', onFormed);
  server.on('abort', onJobAbort);
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
  const jobTimer = options.timeoutMs
    ? setTimeout(
        () =>
          stop({
            code: 124,
            reason: `timeout: the job ran longer than ${options.timeoutMs! / 1000} s; stopping ${running().length} workers`,
          }),
        options.timeoutMs,
      )
    : undefined;

  const finished = plan.map((p) => {
    const env: Record<string, string> = {
      RINGWIRE_RANK: String(p.rank),
      RINGWIRE_SIZE: String(plan.length),
      RINGWIRE_LOCAL_RANK: String(p.localRank),
      RINGWIRE_LOCAL_SIZE: String(p.localSize),
      RINGWIRE_RENDEZVOUS: url,
      RINGWIRE_JOB_ID: jobId,
      [ENV.heartbeatTimeoutMs.name]: String(heartbeatTimeoutMs),
    };
    const child = p.local
      ? spawn(options.command, args, {
          cwd,
          env: { ...localEnv, ...env, RINGWIRE_TOKEN: token },
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn(
          ssh[0],
          [
            ...ssh.slice(1),
            '-o',
            'BatchMode=yes',
            p.host,
            remoteCommand(cwd, { ...extraEnv, ...env }, graceMs, options.command, args),
          ],
          {
            detached: true,
            stdio: ['pipe', 'pipe', 'pipe'],
          },
        );
    const w: Worker = { p, child, pid: child.pid, exited: false };
    workers.push(w);
    if (w.pid) watchdog.stdin!.write(`+${w.pid}\n`);
    if (!p.local) {
      child.stdin!.on('error', () => {}); // ssh gone: its exit says why
      child.stdin!.write(`${token}\n`);
    }
    const tagOut = new LineTagger(`[${p.rank}] `, out);
    const tagErr = new LineTagger(`[${p.rank}] `, err);
    child.stdout?.on('data', (d: Buffer) => tagOut.push(d));
    child.stderr?.on('data', (d: Buffer) => tagErr.push(d));

    return new Promise<void>((done) => {
      let settled = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
        if (settled) return;
        settled = true;
        w.exited = true;
        // The leader is gone; whatever it left in its group goes too.
        if (p.local) killGroup(w.pid, 'SIGKILL');
        if (w.pid) watchdog.stdin!.write(`-${w.pid}\n`);
        // The first exit decides the result (later ones are usually its consequence), but the
        // line saying so waits until this worker's last output is out.
        const failed = !stopping && (spawnError !== undefined || code !== 0);
        if (failed) stop(failure(p, code, signal, spawnError), true);
        let flushed = false;
        const drained = () => {
          if (flushed) return;
          flushed = true;
          tagOut.flush();
          tagErr.flush();
          if (failed && result?.reason) log(result.reason);
          done();
        };
        if (!child.stdout || !child.stderr || (child.stdout.readableEnded && child.stderr.readableEnded))
          return drained();
        const t = setTimeout(() => (child.stdout!.destroy(), child.stderr!.destroy(), drained()), 2_000);
        child.once('close', () => (clearTimeout(t), drained()));
      };
      child.once('exit', (code, signal) => finish(code, signal));
      child.once('error', (e) => {
        if (!w.pid) finish(null, null, e); // spawn itself failed; 'exit' will not come
      });
    });
  });

  await Promise.all(finished);
  clearTimeout(killTimer);
  clearTimeout(startTimer);
  clearTimeout(jobTimer);
  options.signal?.removeEventListener('abort', onAbort);
  process.removeListener('exit', onProcessExit);
  watchdog.stdin!.end();
  server.off('formed', onFormed);
  server.off('abort', onJobAbort);
  await server.close();
  return result ?? { code: 0 };
}

/** The result of a worker that failed, and the line that says how. */
function failure(
  p: Placement,
  code: number | null,
  signal: NodeJS.Signals | null,
  spawnError?: Error,
): LaunchResult {
  const who = `rank ${p.rank}${p.local ? '' : ` (on ${p.host})`}`;
  if (spawnError) {
    const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      code: missing ? 127 : 126,
      failedRank: p.rank,
      reason: `${who} could not be started: ${spawnError.message}`,
    };
  }
  if (signal)
    return {
      code: 128 + (osc.signals[signal] ?? 0),
      failedRank: p.rank,
      signal,
      reason: `${who} was killed by ${signal}`,
    };
  const c = code ?? 1;
  if (!p.local) {
    // Through ssh a signal shows as the shell's 128+n; 255 is ssh's own failure.
    const sig =
      c > 128
        ? (Object.entries(osc.signals).find(([, n]) => n === c - 128)?.[0] as NodeJS.Signals | undefined)
        : undefined;
    if (sig)
      return {
        code: c,
        failedRank: p.rank,
        signal: sig,
        reason: `${who} was killed by ${sig} (remote exit status ${c})`,
      };
    if (c === 255)
      return {
        code: c,
        failedRank: p.rank,
        reason: `${who} exited with code 255: ssh failed (see its message above) or the command exited 255`,
      };
    if (c === 127)
      return {
        code: c,
        failedRank: p.rank,
        reason: `${who} exited with code 127: command not found on ${p.host}`,
      };
  }
  return { code: c, failedRank: p.rank, reason: `${who} exited with code ${c}` };
}

/** Runs `f`, reporting a malformed value (an InvalidArgumentError) as bad usage. */
function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof InvalidArgumentError && !(err instanceof UsageError))
      throw new UsageError(err.message);
    throw err;
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function signalCode(reason: unknown): number {
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
function findExecutable(command: string, cwd: string, path = ''): string | undefined {
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
