import { type JoinResult, jobCredential, RendezvousClient, RendezvousServer } from '@ringwire/rendezvous';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

// Elastic jobs at the protocol level, over real sockets: generations, dense renumbering,
// re-joining on the same connection, the membership notice, /status history, bad bounds.

const TOKEN = 'elastic-token';
let server: RendezvousServer;
let url: string;
let jobN = 0;
const clients: RendezvousClient[] = [];
const aborts: unknown[] = [];

beforeAll(async () => {
  server = new RendezvousServer({ token: TOKEN, rejoinGraceMs: 300, elasticSettleMs: 200, log: () => {} });
  ({ url } = await server.listen());
  server.on('abort', (a) => aborts.push(a));
});
afterAll(() => server.close());
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

async function client(job: string): Promise<RendezvousClient> {
  const c = await RendezvousClient.connect({ url, job, token: jobCredential(TOKEN, job) });
  clients.push(c);
  return c;
}

const elastic = { min: 2, max: 4 };
const join = (c: RendezvousClient, workerId: string, port: number, size = 3, bounds = elastic) =>
  c.join({ size, host: '127.0.0.1', port, elastic: bounds, workerId, timeoutMs: 10_000 });

async function status(job: string) {
  const res = await fetch(`${url.replace('ws:', 'http:')}/status`, {
    headers: { authorization: `Bearer ${jobCredential(TOKEN, job)}` },
  });
  return ((await res.json()) as { details: ReturnType<RendezvousServer['status']>['jobs'] }).details[0];
}

describe('elastic jobs (rendezvous)', () => {
  it('a newcomer is announced; members join again on their connection; ranks stay dense, survivors first', async () => {
    const job = `elastic-${++jobN}`;
    const cs = await Promise.all([0, 1, 2].map(() => client(job)));
    const g1 = await Promise.all(cs.map((c, i) => join(c, `w${i}`, 5000 + i)));
    expect(g1.map((t) => t.generation)).toEqual([1, 1, 1]);
    expect(g1[0].peers.map((p) => p.workerId).sort()).toEqual(['w0', 'w1', 'w2']);
    const notices = cs.map((c) => new Promise((r) => c.once('membership', r)));
    const late = await client(job);
    const lateJoin = join(late, 'late', 6000);
    expect(await Promise.all(notices)).toEqual([
      { generation: 1, waiting: 1 },
      { generation: 1, waiting: 1 },
      { generation: 1, waiting: 1 },
    ]);
    const g2: JoinResult[] = await Promise.all([...cs.map((c, i) => join(c, `w${i}`, 5000 + i)), lateJoin]);
    for (const t of g2) expect(t).toMatchObject({ generation: 2, size: 4 });
    // Survivors keep their order; the newcomer comes last.
    expect(g2.slice(0, 3).map((t) => t.rank)).toEqual(g1.map((t) => t.rank));
    expect(g2[3].rank).toBe(3);
    const s = await status(job);
    expect(s.elastic).toEqual({ min: 2, max: 4, settleMs: 200 });
    expect(s.history.map((h) => [h.generation, h.size, h.joined, h.left])).toEqual([
      [1, 3, g1[0].peers.map((p) => p.workerId), []],
      [2, 4, ['late'], []],
    ]);
    expect(s.history[1].reason).toBe('late joined');
    expect(Date.parse(s.history[1].at)).toBeGreaterThan(Date.parse(s.history[0].at) - 1);
  });

  it('a member that leaves does not abort the job: the others form the next generation without it', async () => {
    const job = `elastic-${++jobN}`;
    const cs = await Promise.all([0, 1, 2].map(() => client(job)));
    await Promise.all(cs.map((c, i) => join(c, `w${i}`, 5100 + i)));
    const before = aborts.length;
    await cs[2].close();
    const t0 = Date.now();
    const g2 = await Promise.all(cs.slice(0, 2).map((c, i) => join(c, `w${i}`, 5100 + i)));
    expect(g2.map((t) => [t.generation, t.size])).toEqual([
      [2, 2],
      [2, 2],
    ]);
    // Waited for w2 to come back (rejoinGraceMs), not for the join timeout.
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(aborts.length).toBe(before);
    const h = (await status(job)).history.at(-1)!;
    expect(h).toMatchObject({ generation: 2, left: ['w2'], joined: [], reason: 'w2 left (left)' });
  });

  it('refuses bad bounds, mismatched bounds and a fixed-size join to an elastic job', async () => {
    const job = `elastic-${++jobN}`;
    const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(() => client(job)));
    await expect(join(a, 'a', 5200, 3, { min: 3, max: 2 })).rejects.toThrow(
      /elastic.max must be an integer >= min/,
    );
    await expect(join(a, 'a', 5200, 5, elastic)).rejects.toThrow(/size 5 is outside the elastic bounds 2..4/);
    const pending = join(a, 'a', 5200).catch((e) => e);
    await expect(join(b, 'b', 5201, 3, { min: 1, max: 4 })).rejects.toThrow(/elastic bounds mismatch/);
    await expect(c.join({ size: 3, host: '127.0.0.1', port: 5202 })).rejects.toThrow(/is elastic/);
    await expect(join(d, 'a', 5203)).rejects.toThrow(/worker "a" is already waiting/);
    await a.close();
    expect((await pending).message).toMatch(/closed/);
  });
});
