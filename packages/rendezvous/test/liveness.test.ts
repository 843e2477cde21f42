import { fileURLToPath } from 'node:url';
import { RendezvousClient, RendezvousServer } from '@ringwire/rendezvous';
import { jsonEvents, killAll, type Proc, spawnNode, waitForJson } from '@ringwire/testing';
import { afterEach, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  for (const p of live) if (p.child.exitCode === null) p.child.kill('SIGCONT');
  live.length = 0;
  await killAll();
});
const live: Proc[] = [];

/** A standalone ringwire-rendezvous process on a free port; resolves with its url. */
async function standalone(args: string[], env: Record<string, string> = {}): Promise<string> {
  // RINGWIRE_TIMEOUT_MS and the heartbeat variable are empty (unset) unless the test sets them.
  const p = spawnNode(CLI, ['--port', '0', ...args], {
    RINGWIRE_TIMEOUT_MS: '',
    RINGWIRE_HEARTBEAT_TIMEOUT_MS: '',
    ...env,
  });
  live.push(p);
  return /(ws:\/\/\S+)/.exec(await p.waitFor(/listening on ws:\/\//))![1];
}

/** Two real client processes joined as one job, each running `action`. */
async function pair(url: string, action: string[], env: Record<string, string> = {}): Promise<Proc[]> {
  const job = `live-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const ps = [0, 1].map((r) => spawnNode(WORKER, [url, job, '', '2', String(r), ...action], env));
  live.push(...ps);
  await Promise.all(ps.map((p) => waitForJson(p, 'joined')));
  return ps;
}

describe('heartbeat timeout', () => {
  it('follows RINGWIRE_TIMEOUT_MS=10000: a rank SIGSTOPped for 6 s is not lost and the job continues', async () => {
    const url = await standalone([], { RINGWIRE_TIMEOUT_MS: '10000' });
    const ps = await pair(url, ['ticks', '8000']);
    await waitForJson(ps[1], 'tick');
    ps[1].child.kill('SIGSTOP');
    await sleep(6000);
    ps[1].child.kill('SIGCONT');
    expect(await Promise.all(ps.map((p) => p.exited))).toEqual([0, 0]);
    for (const p of ps) {
      expect(jsonEvents(p, 'abort')).toEqual([]);
      expect(jsonEvents(p, 'done')).toHaveLength(1);
    }
  }, 30_000);

  it('with the defaults a frozen rank is declared lost after 5 s (within 5 s + a quarter)', async () => {
    const url = await standalone([]);
    const ps = await pair(url, ['hold']);
    ps[1].child.kill('SIGSTOP');
    const t0 = Date.now();
    const abort = await waitForJson<{ rank: number; code: string; reason: string }>(ps[0], 'abort', 10_000);
    const ms = Date.now() - t0;
    expect(abort).toMatchObject({ rank: 1, code: 'RINGWIRE_ERR_PEER_LOST' });
    expect(abort.reason).toMatch(/no heartbeat for 5000 ms/);
    expect(ms).toBeGreaterThanOrEqual(4500);
    expect(ms).toBeLessThan(5000 + 1250 + 1000);
  }, 30_000);

  it('ringwire-rendezvous --heartbeat-timeout sets it: a frozen rank is lost after 1.5 s', async () => {
    const url = await standalone(['--heartbeat-timeout', '1.5']);
    const ps = await pair(url, ['hold']);
    ps[1].child.kill('SIGSTOP');
    const t0 = Date.now();
    const abort = await waitForJson<{ reason: string }>(ps[0], 'abort', 10_000);
    expect(abort.reason).toMatch(/rank 1 .*no heartbeat for 1500 ms/);
    expect(Date.now() - t0).toBeLessThan(1500 + 375 + 1000);
  }, 30_000);

  it("a member's own longer heartbeat timeout (given when it joins) is honoured", async () => {
    const server = new RendezvousServer({ heartbeatTimeoutMs: 300, log: () => {} });
    const { url } = await server.listen();
    try {
      const job = 'own-timeout';
      const a = await RendezvousClient.connect({ url, job, heartbeatIntervalMs: 50 });
      // Silent (never sends a heartbeat) but asked for 2 s.
      const mute = await RendezvousClient.connect({ url, job, heartbeatIntervalMs: 1e9 });
      const aborted: string[] = [];
      a.on('abort', (e) => aborted.push(e.reason));
      await Promise.all([
        a.join({ size: 2, rank: 0, host: 'h', port: 1 }),
        mute.join({ size: 2, rank: 1, host: 'h', port: 2, heartbeatTimeoutMs: 2000 }),
      ]);
      await sleep(1200);
      expect(aborted).toEqual([]);
      await sleep(1800);
      expect(aborted).toEqual([expect.stringMatching(/rank 1 .*no heartbeat for 2000 ms/)]);
      await a.close();
      await mute.close();
    } finally {
      await server.close();
    }
  }, 20_000);
});
