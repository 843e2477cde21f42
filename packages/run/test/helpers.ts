import { fileURLToPath } from 'node:url';
import { killAll, type Proc, sleep, spawnNode, spawnProc } from '@ringwire/testing';

export { alive, allGone, sleep } from '@ringwire/testing';

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

/** Runs ringrun inside a network namespace (`ip netns exec` execs it: the pid is ringrun's). */
export function ringrunIn(ns: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return spawnProc(['ip', 'netns', 'exec', ns, NODE, CLI, ...args], env);
}

/** Kept for hosts.test.ts: every spawned process, ringrunIn's included, is killed by killAll. */
export const killRingrunIn = killAll;

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
