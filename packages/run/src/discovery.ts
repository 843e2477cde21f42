import { spawn } from 'node:child_process';
import { escapeLog } from '@ringwire/common';
import { type HostSlots, parseHostList } from './hosts.js';
import { killGroup } from './tree.js';

/** A discovery script printing more than this is cut off and reported as junk. */
const MAX_OUTPUT = 1 << 20;

/** One run of a host discovery script: the hosts it printed, or why there are none to use. */
export type DiscoveryResult =
  | { hosts: HostSlots[]; error?: undefined }
  | { hosts?: undefined; error: string };

/**
 * Runs a host discovery script once, as horovodrun does: the executable at `script`, no
 * arguments, which prints `host:slots` lines (`host` alone: 1 slot; blank lines and `#` comments
 * are skipped; a host listed twice adds up its slots). A script that cannot start, exits
 * non-zero, is still running after `timeoutMs` (it is killed with its process group), prints a
 * line that is not `host:slots`, or prints no host at all gives an `error` saying which.
 */
export function runDiscovery(
  script: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<DiscoveryResult> {
  return new Promise((resolve) => {
    const child = spawn(script, [], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = false;
    const finish = (r: DiscoveryResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // Whatever it left behind (a background child holding the pipe) goes with it.
      if (child.pid) killGroup(child.pid, 'SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => finish({ error: `did not finish within ${timeoutMs / 1000} s (killed)` }),
      timeoutMs,
    );
    const onAbort = () => finish({ error: 'stopped' });
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.length > MAX_OUTPUT) finish({ error: `printed more than ${MAX_OUTPUT} bytes` });
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-500);
    });
    child.once('error', (e) => finish({ error: `could not be run: ${e.message}` }));
    child.once('close', (code, signal) => {
      const said = err.trim() ? `: ${escapeLog(err.trim(), 300)}` : '';
      if (signal) return finish({ error: `was killed by ${signal}${said}` });
      if (code !== 0) return finish({ error: `exited with code ${code}${said}` });
      finish(parseDiscovery(out));
    });
  });
}

/**
 * Parses a discovery script's output (see runDiscovery). Hosts are told apart by name: a host is
 * what the script calls it (its slots are `name:0`, `name:1`, ...; it cools down as one).
 */
export function parseDiscovery(text: string): DiscoveryResult {
  const hosts: HostSlots[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const body = lines[i].replace(/#.*/, '').trim();
    if (!body) continue;
    if (body.includes(',') || /\s/.test(body))
      return { error: `line ${i + 1}: expected host:slots, got ${JSON.stringify(escapeLog(body, 100))}` };
    let parsed: HostSlots[];
    try {
      parsed = parseHostList(body);
    } catch (e) {
      return { error: `line ${i + 1}: ${(e as Error).message.replace(/^-H "[^"]*": /, '')}` };
    }
    for (const h of parsed) {
      const seen = hosts.find((x) => x.host === h.host);
      if (seen) seen.slots += h.slots;
      else hosts.push({ ...h });
    }
  }
  if (hosts.length === 0) return { error: 'printed no hosts' };
  return { hosts };
}

/** `host:slots,...` for messages. */
export function formatHosts(hosts: HostSlots[]): string {
  return hosts.map((h) => `${h.host}:${h.slots}`).join(',');
}

/**
 * Polls a discovery script every `intervalMs` (each run bounded by the interval too) and calls
 * `onPoll` after each good run, saying whether the host set differs from the last good one. A failed run is reported through
 * `warn` (once until the message changes or a run succeeds) and the previous host set is kept.
 */
export class HostDiscovery {
  private timer?: NodeJS.Timeout;
  private readonly stopper = new AbortController();
  private lastWarning?: string;

  constructor(
    private readonly script: string,
    private readonly intervalMs: number,
    private hosts: HostSlots[],
    private readonly onPoll: (hosts: HostSlots[], changed: boolean) => void,
    private readonly warn: (message: string) => void,
  ) {}

  /** Starts polling (the first run after one interval: the initial host set is given to the constructor). */
  start(): void {
    this.schedule();
  }

  /** Stops polling; a run in flight is killed. */
  stop(): void {
    this.stopper.abort();
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopper.signal.aborted) return;
    this.timer = setTimeout(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    const r = await runDiscovery(this.script, this.intervalMs, this.stopper.signal);
    if (this.stopper.signal.aborted) return;
    if (r.error !== undefined) {
      const message = `host discovery script ${r.error}; keeping the previous hosts (${formatHosts(this.hosts)})`;
      if (message !== this.lastWarning) this.warn(message);
      this.lastWarning = message;
    } else {
      this.lastWarning = undefined;
      const changed = formatHosts(r.hosts) !== formatHosts(this.hosts);
      this.hosts = r.hosts;
      this.onPoll(r.hosts, changed);
    }
    this.schedule();
  }
}
