import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type Proc, spawnNode } from '../../../test/helpers/procs.js';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const WORKER = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));
export const BARRIER = fileURLToPath(new URL('./fixtures/barrier.mjs', import.meta.url));
export const ALLREDUCE = fileURLToPath(new URL('./fixtures/allreduce.mjs', import.meta.url));
export const FAILING = fileURLToPath(new URL('./fixtures/failing.mjs', import.meta.url));
export const NODE = process.execPath;

/** Runs the built ringrun CLI as a real process. */
export function ringrun(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return spawnNode(CLI, args, env);
}

const live = new Set<ChildProcess>();

/** Runs ringrun inside a network namespace (`ip netns exec` execs it: the pid is ringrun's). */
export function ringrunIn(ns: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn('ip', ['netns', 'exec', ns, NODE, CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const lines: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number>((resolve) =>
    child.on(
      'exit',
      (code, signal) => (
        live.delete(child), resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGINT' ? 2 : 15))
      ),
    ),
  );
  return { child, lines, stderr, exited, waitFor: () => Promise.reject(new Error('use waitEvents')) };
}

export async function killRingrunIn(): Promise<void> {
  await Promise.all(
    [...live].map(
      (c) =>
        new Promise((r) =>
          c.exitCode !== null || c.signalCode !== null ? r(null) : (c.once('exit', r), c.kill('SIGKILL')),
        ),
    ),
  );
}

/** The JSON events a rank printed through ringrun. */
export function events<T = Record<string, unknown>>(
  p: Proc,
  event: string,
): (T & { rank: number; pid: number })[] {
  return p.lines
    .map((l) => /^\[\d+\] (\{.*\})$/.exec(l)?.[1])
    .filter((j): j is string => j?.includes(`"event":"${event}"`))
    .map((j) => JSON.parse(j));
}

/** Waits until `count` ranks have printed `event` through ringrun. */
export async function waitEvents<T = Record<string, unknown>>(
  p: Proc,
  event: string,
  count: number,
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = events<T>(p, event);
    if (got.length >= count) return got;
    if (Date.now() > deadline)
      throw new Error(
        `only ${got.length} of ${count} "${event}" events:\n${p.lines.join('\n')}\n${p.stderr.join('\n')}`,
      );
    await sleep(25);
  }
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
