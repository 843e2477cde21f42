import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * A real child process of a multi-process test, its output collected line by line. Every one
 * is tracked until it exits: call `killAll()` in afterEach/afterAll so none outlives its test.
 */
export interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: string[];
  /** Resolves with the exit code (or 128+signal) once the process has exited. */
  exited: Promise<number>;
  /** Resolves with the first stdout line matching, or rejects after timeoutMs. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

const live = new Set<ChildProcess>();
const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Runs `cmd[0] cmd[1..]` with `env` over this process's environment. */
export function spawnProc(cmd: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(cmd[0], cmd.slice(1), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of [...waiters]) if (w.re.test(l)) waiters.splice(waiters.indexOf(w), 1), w.resolve(l);
  });
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? 128 + (SIGNALS[signal ?? ''] ?? 0));
    }),
  );
  return {
    child,
    lines,
    stderr,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      const hit = lines.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(
              new Error(`timed out waiting for ${re} in output:\n${lines.join('\n')}\n${stderr.join('\n')}`),
            ),
          timeoutMs,
        );
        waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
        void exited.then(() =>
          setTimeout(
            () =>
              reject(
                new Error(`process exited before printing ${re}:\n${lines.join('\n')}\n${stderr.join('\n')}`),
              ),
            50,
          ),
        );
      });
    },
  };
}

/** Runs `node script args`, or `prefix... node script args` (e.g. under unshare). */
export function spawnNode(
  script: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  prefix: string[] = [],
): Proc {
  return spawnProc([...prefix, process.execPath, script, ...args], env);
}

/** Parses the first stdout line that is a JSON object with the given `event`. */
export async function waitForJson<T = Record<string, unknown>>(
  p: Proc,
  event: string,
  timeoutMs?: number,
): Promise<T> {
  const line = await p.waitFor(new RegExp(`^\\{"event":"${event}"`), timeoutMs);
  return JSON.parse(line) as T;
}

/** Every stdout JSON line with the given `event`, in order (call after the process has exited). */
export function jsonEvents<T = Record<string, unknown>>(p: Proc, event: string): T[] {
  return p.lines.filter((l) => l.startsWith(`{"event":"${event}"`)).map((l) => JSON.parse(l) as T);
}

/** SIGKILLs every process spawned here that is still running and waits until all have exited. */
export async function killAll(): Promise<void> {
  const waits = [...live].map(
    (c) =>
      new Promise((r) =>
        c.exitCode !== null || c.signalCode !== null ? r(null) : (c.once('exit', r), c.kill('SIGKILL')),
      ),
  );
  await Promise.all(waits);
}

/** A process counts as alive until it is gone or a zombie (nobody may have reaped it yet). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Resolves once none of the pids is alive; rejects naming the survivors after timeoutMs. */
export async function allGone(pids: number[], timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline)
      throw new Error(`still alive after ${timeoutMs} ms: ${pids.filter(alive).join(', ')}`);
    await sleep(25);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
