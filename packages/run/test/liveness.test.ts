import { fileURLToPath } from 'node:url';
import { killAll } from '@ringwire/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { events, NODE, ringrun, sleep, WORKER, waitEvents } from './helpers.js';

const STEPS = fileURLToPath(new URL('./fixtures/steps.mjs', import.meta.url));
let stopped: number[] = [];
afterEach(async () => {
  for (const pid of stopped) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
  }
  stopped = [];
  await killAll();
});

/** Freezes a worker (as a long GC pause, swap or a debugger would) for `ms`. */
async function freeze(pid: number, ms: number): Promise<void> {
  stopped.push(pid);
  process.kill(pid, 'SIGSTOP');
  await sleep(ms);
  process.kill(pid, 'SIGCONT');
}

describe('ringrun liveness', () => {
  it('RINGWIRE_TIMEOUT_MS=10000: a rank frozen for 6 s mid-job is not declared lost; the job finishes', async () => {
    const p = ringrun(['-np', '2', '--grace', '1', NODE, STEPS], {
      RINGWIRE_TIMEOUT_MS: '10000',
      RINGWIRE_HEARTBEAT_TIMEOUT_MS: '',
      RR_TEST_MS: '8000',
    });
    const first = await waitEvents(p, 'step', 2);
    await freeze(first.find((e) => e.rank === 1)!.pid, 6000);
    expect(await p.exited).toBe(0);
    expect(events<{ wrong: number }>(p, 'done').map((e) => e.wrong)).toEqual([0, 0]);
    expect(p.stderr.join('\n')).not.toMatch(/lost|PEER_LOST/);
  }, 40_000);

  it('--heartbeat-timeout reaches the rendezvous and the workers: a rank frozen for good is lost after it', async () => {
    const env = ringrun(['-np', '1', '--heartbeat-timeout', '7.5', NODE, WORKER, 'env']);
    expect(await env.exited).toBe(0);
    expect(events<{ vars: Record<string, string> }>(env, 'env')[0].vars.RINGWIRE_HEARTBEAT_TIMEOUT_MS).toBe(
      '7500',
    );

    const p = ringrun(['-np', '2', '--grace', '1', '--heartbeat-timeout', '1.5', NODE, STEPS], {
      RINGWIRE_TIMEOUT_MS: '60000',
      RR_TEST_MS: '30000',
    });
    const first = await waitEvents(p, 'step', 2);
    const victim = first.find((e) => e.rank === 1)!.pid;
    stopped.push(victim);
    process.kill(victim, 'SIGSTOP');
    const t0 = Date.now();
    expect(await p.exited).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(1500 + 375 + 1000 + 1000 + 2000); // + grace, + the exits
    expect(p.stderr.join('\n')).toMatch(/rank 1 .*no heartbeat for 1500 ms/);
  }, 40_000);
});
