import { constants as osc } from 'node:os';
import { resolve } from 'node:path';
import { ENV, LAUNCHER_ENV, readEnv, resolveHeartbeatTimeoutMs } from '@ringwire/common';
import type { GenerationRecord, PeerTable } from '@ringwire/rendezvous';
import { HOST_FAILURES, HostCooldown } from './cooldown.js';
import { formatHosts, HostDiscovery, runDiscovery } from './discovery.js';
import { type HostSlots, isLocalHost, placeRanks, UsageError } from './hosts.js';
import {
  CONTRACT_VARS,
  findExecutable,
  type LaunchOptions,
  type LaunchResult,
  signalCode,
  startRendezvous,
  stopTriggers,
  usage,
} from './launch.js';
import { splitWords } from './shell.js';
import { Watchdog } from './watchdog.js';
import { type WorkerContext, type WorkerExit, WorkerProcess } from './worker.js';

/** How often the discovery script runs by default (--discovery-interval). */
export const DEFAULT_DISCOVERY_INTERVAL_MS = 5_000;
/** How long a host whose workers keep failing gets no new workers by default (--host-cooldown). */
export const DEFAULT_HOST_COOLDOWN_MS = 60_000;
/** How often the processes each worker started are collected (see ProcessTree). */
const SCAN_MS = 500;

/** The elastic part of a launch (the `--min-np`, `--max-np`, ... flags). */
export interface ElasticOptions {
  /** The job goes on while at least this many workers run. Default: the initial size. */
  minNp?: number;
  /** At most this many workers at once. Default: the initial size. */
  maxNp?: number;
  /** How many times each worker slot is restarted after its worker fails. Default 0. */
  maxRestarts?: number;
  /** An executable printing `host:slots` lines (see runDiscovery); replaces `hosts`. */
  discoveryScript?: string;
  /** How often the script runs, and how long one run may take. Default 5000. */
  discoveryIntervalMs?: number;
  /** After HOST_FAILURES worker failures within this long, a host gets no new workers for this long. Default 60000. */
  hostCooldownMs?: number;
}

/** A launch of an elastic job: LaunchOptions (np = the initial size) plus the elastic bounds. */
export interface ElasticLaunchOptions extends LaunchOptions {
  elastic: ElasticOptions;
}

/** Variables ringrun sets for every worker of an elastic job; `-x` may not override them. */
const ELASTIC_VARS = [...CONTRACT_VARS, ENV.minSize.name, ENV.maxSize.name, ENV.workerId.name];

/** One place a worker runs: `host:index`, restarted as `host:index#n`. */
interface Slot {
  id: string;
  host: string;
  local: boolean;
  /** Restarts so far. */
  restarts: number;
  /** Its current or last worker; `failed`: that worker failed on its own. */
  worker?: WorkerProcess;
  failed?: boolean;
}

type Formed = PeerTable & { change?: GenerationRecord };

/**
 * Runs an elastic job (see the README's "Elastic training"): the workers join the embedded
 * rendezvous as an elastic job of minNp..maxNp (RINGWIRE_MIN_SIZE/MAX_SIZE), each with a stable
 * RINGWIRE_WORKER_ID (`host:slot`, `#n` after the n-th restart) that also tags its output. A
 * worker that fails does not stop the job: its slot is restarted (up to maxRestarts times) and
 * joins the next generation; the job fails only when fewer than minNp workers remain. With a
 * discovery script, workers are started on new hosts (up to maxNp) and stopped on removed ones.
 * Each generation the rendezvous forms is printed once. The result is 0 once a worker finished
 * with 0 and the rest have ended; below the minimum, the first failed worker's code.
 */
export async function launchElastic(options: ElasticLaunchOptions): Promise<LaunchResult> {
  const e = options.elastic;
  const graceMs = options.graceMs ?? 5_000;
  const cwd = resolve(options.cwd ?? process.cwd());
  const args = options.args ?? [];
  const extraEnv = options.env ?? {};
  const log = options.log ?? ((m: string) => process.stderr.write(`ringrun: ${m}\n`));
  const ssh = options.ssh ?? splitWords(readEnv('ringrunSsh') ?? 'ssh');
  for (const k of Object.keys(extraEnv)) {
    if (ELASTIC_VARS.includes(k)) throw new UsageError(`-x ${k}: ringrun sets it for every worker`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new UsageError(`-x: bad variable name ${JSON.stringify(k)}`);
  }
  if (!options.command) throw new UsageError('no command given');
  const maxRestarts = e.maxRestarts ?? 0;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0)
    throw new UsageError(`--max-restarts must be an integer >= 0, got ${maxRestarts}`);
  const intervalMs = e.discoveryIntervalMs ?? DEFAULT_DISCOVERY_INTERVAL_MS;
  const cooldownMs = e.hostCooldownMs ?? DEFAULT_HOST_COOLDOWN_MS;
  if (!(intervalMs > 0) || !(cooldownMs > 0))
    throw new UsageError('--discovery-interval and --host-cooldown must be positive');
  if (e.minNp !== undefined && e.maxNp !== undefined && e.minNp > e.maxNp)
    throw new UsageError(`--min-np ${e.minNp} is above --max-np ${e.maxNp}`);
  if (e.discoveryScript && options.hosts?.length)
    throw new UsageError('--host-discovery-script lists the hosts: give it or -H/--hostfile, not both');

  // The hosts at start, and how many workers start on them.
  let hosts: HostSlots[];
  let initial: number;
  if (e.discoveryScript) {
    const r = await runDiscovery(e.discoveryScript, intervalMs);
    if (r.error !== undefined)
      throw new UsageError(`--host-discovery-script ${e.discoveryScript} ${r.error}`);
    hosts = r.hosts;
    const total = hosts.reduce((s, h) => s + h.slots, 0);
    initial = Math.min(options.np ?? e.maxNp ?? total, total);
  } else {
    const plan = placeRanks(options.np, options.hosts);
    hosts = [];
    for (const p of plan) if (p.localRank === 0) hosts.push({ host: p.host, slots: p.localSize });
    initial = plan.length;
  }
  const np = options.np ?? initial;
  const min = e.minNp ?? np;
  const max = e.maxNp ?? Math.max(np, min);
  if (initial < min && e.discoveryScript)
    throw new UsageError(
      `the host discovery script lists ${initial} slots (${formatHosts(hosts)}), fewer than --min-np ${min}`,
    );
  if (np > max) throw new UsageError(`-np ${np} is above --max-np ${max}`);
  if (np < min) throw new UsageError(`-np ${np} is below --min-np ${min}`);

  const localEnv: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  // Ranks come from the rendezvous per generation: none inherited from ringrun's own environment.
  for (const k of LAUNCHER_ENV) delete localEnv[k];
  const heartbeatTimeoutMs = usage(() =>
    resolveHeartbeatTimeoutMs({ heartbeatTimeoutMs: options.heartbeatTimeoutMs }, localEnv),
  );
  if (hosts.some((h) => isLocalHost(h.host)) && !findExecutable(options.command, cwd, localEnv.PATH)) {
    const reason = `command not found: ${options.command}`;
    log(reason);
    return { code: 127, reason };
  }
  if (options.signal?.aborted)
    return { code: signalCode(options.signal.reason), reason: 'aborted before start' };

  const remoteHosts = hosts.filter((h) => !isLocalHost(h.host)).map((h) => h.host);
  const { tls, jobId, token, server, url } = await startRendezvous(
    options,
    remoteHosts,
    localEnv,
    cwd,
    heartbeatTimeoutMs,
    log,
  );
  const contract: Record<string, string> = {
    [ENV.size.name]: String(initial),
    [ENV.minSize.name]: String(min),
    [ENV.maxSize.name]: String(max),
    [ENV.rendezvous.name]: url,
    [ENV.jobId.name]: jobId,
    [ENV.heartbeatTimeoutMs.name]: String(heartbeatTimeoutMs),
    ...tls?.env,
  };
  if (options.verbose)
    log(
      `elastic job ${jobId}: ${initial} workers (min ${min}, max ${max}, ${maxRestarts} restarts per slot) on ${formatHosts(hosts)}, rendezvous ${url}; command: ${[options.command, ...args].join(' ')} (cwd ${cwd})`,
    );

  const watchdog = new Watchdog(graceMs);
  const ctx: WorkerContext = {
    command: options.command,
    args,
    cwd,
    localEnv,
    extraEnv,
    token,
    ssh,
    graceMs,
    out: options.stdout ?? process.stdout,
    err: options.stderr ?? process.stderr,
    watchdog,
  };
  const cooldown = new HostCooldown(cooldownMs);
  const slots = new Map<string, Slot>();
  const workers: WorkerProcess[] = [];
  const drained = new Set<WorkerProcess>();
  /** What went wrong so far, for the message when the job falls below its minimum. */
  const events: string[] = [];
  let firstFailure: number | undefined;
  let result: LaunchResult | undefined;
  let stopping = false;
  let succeeded = false;
  let started = false;
  let cooldownTimer: NodeJS.Timeout | undefined;
  let allDone!: () => void;
  const ended = new Promise<void>((r) => (allDone = r));
  const running = () => workers.filter((w) => !w.exited && !w.stopped);

  const scanTimer = setInterval(
    () => watchdog.scan(running().flatMap((w) => (w.tree ? [w.tree] : []))),
    SCAN_MS,
  );
  scanTimer.unref();

  /** Ends the job: the first reason wins and is printed; every worker is stopped. */
  const stop = (why: LaunchResult) => {
    if (stopping) return;
    stopping = true;
    result = why;
    if (why.reason) log(why.reason);
    discovery?.stop();
    watchdog.scan(running().flatMap((w) => (w.tree ? [w.tree] : [])));
    for (const w of workers) w.stop();
  };

  const start = (s: Slot) => {
    const id = s.restarts ? `${s.id}#${s.restarts}` : s.id;
    const w: WorkerProcess = new WorkerProcess(
      ctx,
      id,
      s.host,
      s.local,
      { ...contract, [ENV.workerId.name]: id },
      (exit) => onExit(s, w, exit),
    );
    s.worker = w;
    s.failed = false;
    workers.push(w);
    void w.closed.then(() => {
      drained.add(w);
      if (drained.size === workers.length) allDone();
    });
  };

  /**
   * Brings the workers in line with the hosts: stops those on slots no longer listed, starts
   * new slots and restarts failed ones (while restarts remain and the host is not cooling down)
   * up to the size allowed (the initial size at start; with discovery, maxNp afterwards), then
   * fails the job if fewer than minNp remain.
   */
  const reconcile = () => {
    if (stopping) return;
    const listed = hosts.flatMap((h) =>
      Array.from({ length: h.slots }, (_, i) => ({ id: `${h.host}:${i}`, host: h.host })),
    );
    const ids = new Set(listed.map((l) => l.id));
    for (const s of [...slots.values()]) {
      if (ids.has(s.id)) continue;
      slots.delete(s.id);
      if (s.worker && !s.worker.exited && !s.worker.stopped) {
        log(`stopping ${s.worker.tag}: its host is no longer listed`);
        events.push(`${s.worker.tag} stopped (host no longer listed)`);
        s.worker.stop();
      }
    }
    if (!succeeded) {
      let room = (started && e.discoveryScript ? max : initial) - running().length;
      for (const l of listed) {
        if (room <= 0) break;
        let s = slots.get(l.id);
        if (!s) slots.set(l.id, (s = { ...l, local: isLocalHost(l.host), restarts: 0 }));
        if (s.worker && !(s.worker.exited && s.failed)) continue; // running, or ended on purpose
        if (cooldown.excluded(s.host)) continue;
        if (s.worker) {
          if (s.restarts >= maxRestarts) continue;
          s.restarts++;
          log(`restarting ${s.id} as ${s.id}#${s.restarts} (restart ${s.restarts} of ${maxRestarts})`);
        }
        start(s);
        room--;
      }
    }
    started = true;
    const alive = running().length;
    if (!succeeded && alive < min) {
      const usedUp = [...slots.values()].some((s) => s.failed && s.restarts >= maxRestarts);
      const hint =
        firstFailure === undefined
          ? []
          : maxRestarts === 0
            ? ['no restarts allowed (--max-restarts 0)']
            : usedUp
              ? [`restarts used up (--max-restarts ${maxRestarts})`]
              : [];
      const why = [...events, ...hint];
      stop({
        code: firstFailure ?? 1,
        reason: `elastic job failed: ${alive} worker${alive === 1 ? '' : 's'} left, fewer than --min-np ${min}: ${why.join('; ')}`,
      });
    }
  };

  const onExit = (s: Slot, w: WorkerProcess, exit: WorkerExit) => {
    if (!exit.stopped && !exit.spawnError && exit.code === 0) succeeded = true;
    else if (!exit.stopped) {
      const { code, text } = describeExit(w, exit);
      firstFailure ??= code;
      if (s.worker === w) s.failed = true;
      events.push(text);
      const left = running().length;
      log(`${text}; ${left} worker${left === 1 ? '' : 's'} running`);
      if (cooldown.failed(w.host)) {
        const line = `host ${w.host} excluded for ${cooldownMs / 1000} s: ${HOST_FAILURES} worker failures within that time`;
        log(line);
        events.push(line);
        clearTimeout(cooldownTimer);
        cooldownTimer = setTimeout(reconcile, (cooldown.nextEndIn() ?? 0) + 10);
        cooldownTimer.unref();
      }
    }
    reconcile();
  };

  const discovery = e.discoveryScript
    ? new HostDiscovery(
        e.discoveryScript,
        intervalMs,
        hosts,
        (now, changed) => {
          if (changed) log(`hosts changed: ${formatHosts(now)} (were ${formatHosts(hosts)})`);
          hosts = now;
          reconcile(); // also grows the job up to --max-np after the start
        },
        (m) => log(`warning: ${m}`),
      )
    : undefined;

  // Worker ids in a stable order (host, then slot as a number), whatever order they were noticed in.
  const sorted = (ids: readonly string[]) =>
    [...ids].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  let formed = false;
  const onFormed = (f: Formed) => {
    if (f.job !== jobId) return;
    formed = true;
    clearTimeout(startTimer);
    const c = f.change;
    const what =
      !c || c.reason === 'start'
        ? 'start'
        : `left: ${list(sorted(c.left))}; joined: ${list(sorted(c.joined))}`;
    log(`generation ${f.generation}: ${f.size} worker${f.size === 1 ? '' : 's'} (${what})`);
  };
  server.on('formed', onFormed);
  const untrigger = stopTriggers(options, stop, () => workers.filter((w) => !w.exited));
  const startTimer = options.startTimeoutMs
    ? setTimeout(() => {
        if (formed) return;
        const job = server.status().jobs.find((j) => j.id === jobId);
        stop({
          code: 124,
          reason: `start timeout: no generation formed within ${options.startTimeoutMs! / 1000} s (${job?.joined ?? 0} of ${initial} workers joined the rendezvous)`,
        });
      }, options.startTimeoutMs)
    : undefined;

  reconcile();
  discovery?.start();
  await ended;

  discovery?.stop();
  clearInterval(scanTimer);
  clearTimeout(cooldownTimer);
  clearTimeout(startTimer);
  untrigger();
  watchdog.close();
  server.off('formed', onFormed);
  await server.close();
  tls?.remove();
  if (result) return result;
  if (succeeded) return { code: 0 };
  return { code: firstFailure ?? 1, reason: 'no worker finished' };
}

/** The exit code ringrun reports for a failed worker, and a line saying how it ended. */
function describeExit(w: WorkerProcess, exit: WorkerExit): { code: number; text: string } {
  const where = w.local ? '' : ` (on ${w.host})`;
  if (exit.spawnError) {
    const missing = (exit.spawnError as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      code: missing ? 127 : 126,
      text: `${w.tag}${where} could not be started: ${exit.spawnError.message}`,
    };
  }
  if (exit.signal)
    return {
      code: 128 + (osc.signals[exit.signal] ?? 0),
      text: `${w.tag}${where} was killed by ${exit.signal}`,
    };
  const code = exit.code ?? 1;
  return { code, text: `${w.tag}${where} exited with code ${code}` };
}

const list = (ids: string[]) => (ids.length ? ids.join(', ') : '-');
