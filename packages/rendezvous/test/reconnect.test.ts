import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decode,
  encode,
  proof,
  RendezvousClient,
  type RendezvousClientEvents,
  RendezvousServer,
} from '@ringwire/rendezvous';
import { freePort, sigkill as kill, killAll, startStandalone } from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

// A client whose rendezvous goes away keeps its membership: it reconnects with backoff and
// re-registers, and its requests wait for that within their own timeout. The rendezvous here is
// the real `ringwire-rendezvous` process, SIGKILLed and restarted on the same port.

const TOKEN = 'reconnect-token';
let dir: string;
let tokenFile: string;
let jobN = 0;
const job = () => `reconnect-${process.pid}-${++jobN}`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ringwire-reconnect-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => killAll());

const rendezvous = (port: number) => startStandalone(port, tokenFile);

/** Resolves with the client's next `event`, or rejects after `ms`. */
function next<E extends keyof RendezvousClientEvents>(
  c: RendezvousClient,
  event: E,
  ms: number,
): Promise<RendezvousClientEvents[E][0]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    c.once(event, ((v: RendezvousClientEvents[E][0]) => (clearTimeout(t), resolve(v))) as never);
  });
}

/** Every event each client emits, to check that nothing aborted or was lost. */
function record(cs: RendezvousClient[]): string[][] {
  return cs.map((c) => {
    const seen: string[] = [];
    for (const e of ['abort', 'lost', 'disconnected', 'reconnected'] as const) c.on(e, () => seen.push(e));
    return seen;
  });
}

type Status = {
  jobs: { id: string; generation: number; state: string; members: { rank: number; alive: boolean }[] }[];
};
/** The job details /status shows the server's secret (the token file holds it). */
const status = async (port: number): Promise<Status> => {
  const res = await fetch(`http://127.0.0.1:${port}/status`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const body = (await res.json()) as { details?: Status['jobs'] };
  return { jobs: body.details ?? [] };
};

describe('the rendezvous goes away and comes back on the same port', () => {
  it('members re-register (status shows the job), the KV store and barriers work, a KV op made while it was down waits and succeeds', async () => {
    const port = await freePort();
    let server = await rendezvous(port);
    const url = `ws://127.0.0.1:${port}`;
    const id = job();
    const cs = await Promise.all(
      [0, 1, 2].map(() =>
        RendezvousClient.connect({
          url,
          job: id,
          token: TOKEN,
          connectTimeoutMs: 10_000,
          heartbeatIntervalMs: 200,
        }),
      ),
    );
    const seen = record(cs);
    try {
      const tables = await Promise.all(
        cs.map((c, r) => c.join({ size: 3, rank: r, host: 'h', port: 100 + r })),
      );
      const away = Promise.all(cs.map((c) => next(c, 'disconnected', 5_000)));
      await kill(server);
      await away;
      // Made while it is down: they wait for the reconnection.
      const t0 = Date.now();
      const set = cs[0].set('during', 42);
      const got = cs[1].get('late', { wait: true, timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 700));
      const back = Promise.all(cs.map((c) => next(c, 'reconnected', 10_000)));
      server = await rendezvous(port);
      await back;
      await set;
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(await cs[2].get('during')).toBe(42);
      await cs[2].set('late', 'here');
      expect(await got).toBe('here');
      const s = (await status(port)).jobs.find((j) => j.id === id)!;
      expect(s).toMatchObject({ generation: tables[0].generation, state: 'running' });
      expect(s.members.map((m) => [m.rank, m.alive])).toEqual([
        [0, true],
        [1, true],
        [2, true],
      ]);
      await Promise.all(cs.map((c) => c.barrier('after-restart', { timeoutMs: 5_000 })));
      // Heartbeats resumed: the sweeper (5 s) has not declared anyone lost.
      await new Promise((r) => setTimeout(r, 5_500));
      expect(seen).toEqual([0, 1, 2].map(() => ['disconnected', 'reconnected']));
      // A failure report reaches everyone again.
      const aborts = cs.map((c) => next(c, 'abort', 3_000));
      await cs[1].reportFailure('boom', { code: 'RINGWIRE_ERR_MISMATCH' });
      for (const a of await Promise.all(aborts))
        expect(a).toEqual({ rank: 1, reason: 'boom', code: 'RINGWIRE_ERR_MISMATCH' });
    } finally {
      await Promise.all(cs.map((c) => c.close()));
      await kill(server);
    }
  }, 40_000);

  it('a request made while it never comes back fails with RINGWIRE_ERR_RENDEZVOUS after its own timeout; lost is emitted', async () => {
    const port = await freePort();
    const server = await rendezvous(port);
    const c = await RendezvousClient.connect({
      url: `ws://127.0.0.1:${port}`,
      job: job(),
      token: TOKEN,
      connectTimeoutMs: 1_500,
    });
    await c.join({ size: 1, host: 'h', port: 1 });
    const away = next(c, 'disconnected', 5_000);
    await kill(server);
    await away;
    const lost = next(c, 'lost', 5_000);
    const t0 = Date.now();
    await expect(c.set('x', 1)).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_RENDEZVOUS',
      message: expect.stringMatching(
        /^set waited 1500 ms for the rendezvous at ws:\/\/127\.0\.0\.1:\d+ to come back$/,
      ),
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_400);
    expect((await lost).code).toBe('RINGWIRE_ERR_RENDEZVOUS');
    const t1 = Date.now();
    await c.close();
    expect(Date.now() - t1).toBeLessThan(500);
  });

  it('a connection that drops while the server stays up re-registers within the grace window: no abort', async () => {
    const port = await freePort();
    const server = await rendezvous(port);
    const url = `ws://127.0.0.1:${port}`;
    const id = job();
    const cs = await Promise.all(
      [0, 1].map(() => RendezvousClient.connect({ url, job: id, token: TOKEN, heartbeatIntervalMs: 200 })),
    );
    const seen = record(cs);
    try {
      await Promise.all(cs.map((c, r) => c.join({ size: 2, rank: r, host: 'h', port: 100 + r })));
      const back = next(cs[0], 'reconnected', 5_000);
      // Drop rank 0's socket under it (a network blip).
      (cs[0] as unknown as { ws: WebSocket }).ws.terminate();
      await back;
      await new Promise((r) => setTimeout(r, 500));
      expect(seen).toEqual([['disconnected', 'reconnected'], []]);
      const s = (await status(port)).jobs.find((j) => j.id === id)!;
      expect(s.state).toBe('running');
      expect(s.members.map((m) => m.alive)).toEqual([true, true]);
      await Promise.all(cs.map((c) => c.barrier('b', { timeoutMs: 5_000 })));
    } finally {
      await Promise.all(cs.map((c) => c.close()));
      await kill(server);
    }
  });
});

describe('rejoin is validated', () => {
  let server: RendezvousServer;
  let url: string;
  beforeAll(async () => {
    server = new RendezvousServer({ token: TOKEN, rejoinGraceMs: 500, log: () => {} });
    ({ url } = await server.listen());
  });
  afterAll(() => server.close());

  /** A raw authenticated connection: sends one request, resolves with the server's answer. */
  async function raw(
    id: string,
  ): Promise<{ req: (r: object) => Promise<Record<string, unknown>>; ws: WebSocket }> {
    const ws = new WebSocket(url);
    const msgs: Record<string, unknown>[] = [];
    let wake = () => {};
    ws.on('message', (d) => (msgs.push(decode(d as Buffer)), wake()));
    const take = async () => {
      while (!msgs.length) await new Promise<void>((r) => (wake = r));
      return msgs.shift()!;
    };
    const { nonce } = (await take()) as { nonce: Uint8Array };
    ws.send(encode({ t: 'hello', job: id, proof: proof(TOKEN, nonce, id) }));
    expect((await take()).t).toBe('welcome');
    let n = 0;
    return { ws, req: (r) => (ws.send(encode({ t: 'req', id: ++n, ...r })), take()) };
  }

  it('refuses bad fields, a wrong generation or address, and takes over a rank only as the same member', async () => {
    const id = job();
    // Rank 0 is a raw connection (a client would reconnect and take its rank back).
    const first = await raw(id);
    const c = await RendezvousClient.connect({ url, job: id, token: TOKEN });
    const [res0, t] = await Promise.all([
      first.req({ op: 'join', size: 2, rank: 0, host: 'h', port: 100 }),
      c.join({ size: 2, rank: 1, host: 'h', port: 101 }),
    ]);
    expect(res0).toMatchObject({ ok: true });
    const gen = t.generation;
    const aborts: unknown[] = [];
    c.on('abort', (a) => aborts.push(a));
    const ok = { op: 'rejoin', rank: 0, size: 2, generation: gen, host: 'h', port: 100, localRank: 0 };
    const r = await raw(id);
    for (const [bad, why] of [
      [{ rank: 2 }, /rank must be an integer in 0\.\.1/],
      [{ generation: 0 }, /generation must be a positive integer/],
      [{ port: 0 }, /bad port/],
      [{ generation: gen + 1 }, new RegExp(`is at generation ${gen} with 2 members`)],
      [{ size: 3 }, new RegExp(`is at generation ${gen} with 2 members, not generation ${gen} with 3`)],
      [{ host: 'other' }, /rank 0 of job .* is h:100, not other:100/],
    ] as const) {
      const res = await r.req({ ...ok, ...bad });
      expect(res).toMatchObject({ ok: false, error: { code: 'RINGWIRE_ERR_RENDEZVOUS' } });
      expect((res.error as { message: string }).message).toMatch(why);
    }
    // The same member: the old connection is closed, and no abort is raised for it.
    const firstClosed = new Promise((res) => first.ws.once('close', res));
    expect(await r.req(ok)).toMatchObject({ ok: true });
    await firstClosed;
    await new Promise((res) => setTimeout(res, 800));
    expect(aborts).toEqual([]);
    expect(await r.req({ op: 'set', key: 'k', value: 1 })).toMatchObject({ ok: true });
    // Now rank 0 is gone for good: the job is aborted for it after the grace window.
    const abort = next(c, 'abort', 3_000);
    r.ws.terminate();
    expect(await abort).toMatchObject({ rank: 0, code: 'RINGWIRE_ERR_PEER_LOST' });
    expect((await abort).reason).toMatch(
      /rank 0 \(h\) lost: connection closed, and it did not re-register within 500 ms/,
    );
    await c.close();
  });
});

describe('the first connect waits for a rendezvous that is not there yet', () => {
  it('a name that does not resolve yet (a Service before its pod) is retried until connectTimeoutMs, then named', async () => {
    const url = 'ws://ringwire-not-yet.invalid:29400';
    const t0 = Date.now();
    await expect(
      RendezvousClient.connect({ url, job: job(), token: TOKEN, connectTimeoutMs: 1_200 }),
    ).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_RENDEZVOUS',
      message: expect.stringMatching(
        /^cannot reach the rendezvous at ws:\/\/ringwire-not-yet\.invalid:29400 \(retried for 1200 ms\): getaddrinfo (ENOTFOUND|EAI_AGAIN)/,
      ),
    });
    // Without the retry it fails within the first lookup (milliseconds here).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
  }, 15_000);
});
