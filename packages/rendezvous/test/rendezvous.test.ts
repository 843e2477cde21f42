import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  encode,
  jobCredential,
  type PeerInfo,
  RendezvousClient,
  RendezvousServer,
} from '@ringwire/rendezvous';
import { jsonEvents, killAll, type Proc, spawnNode, waitForJson } from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const WORKER = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const TOKEN = 'test-token';

let server: RendezvousServer;
let url: string;
let jobN = 0;
const job = () => `job-${process.pid}-${++jobN}`;

beforeAll(async () => {
  server = new RendezvousServer({ token: TOKEN, heartbeatTimeoutMs: 1500, log: () => {} });
  ({ url } = await server.listen());
});
afterAll(() => server.close());
afterEach(() => killAll());

function workers(
  id: string,
  size: number,
  ranks: (number | '-')[],
  action = 'join',
  extra: string[] = [],
  env: Record<string, string>[] = [],
): Proc[] {
  return ranks.map((r, i) =>
    spawnNode(WORKER, [url, id, TOKEN, String(size), String(r), action, ...extra], env[i] ?? {}),
  );
}

type Joined = { rank: number; generation: number; peers: PeerInfo[]; hosts: Record<string, number[]> };

describe('membership', () => {
  for (const n of [1, 2, 3, 5, 8]) {
    it(`forms a job of ${n} without given ranks: same table everywhere, ranks 0..${n - 1}`, async () => {
      const ps = workers(job(), n, Array(n).fill('-'));
      const tables = await Promise.all(ps.map((p) => waitForJson<Joined>(p, 'joined')));
      expect(tables.map((t) => t.rank).sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
      for (const t of tables) {
        expect(t.peers).toEqual(tables[0].peers);
        expect(t.generation).toBe(tables[0].generation);
      }
      expect(tables[0].peers.map((p) => p.rank)).toEqual([...Array(n).keys()]);
      expect(tables[0].peers.every((p) => p.localSize === n)).toBe(true);
      expect(new Set(tables[0].peers.map((p) => p.localRank)).size).toBe(n);
    });
  }

  it('keeps given ranks and fills the rest grouped by host', async () => {
    const hosts = ['hostB', 'hostA', 'hostB', 'hostA', 'hostA'];
    const ps = workers(
      job(),
      5,
      [4, '-', '-', '-', '-'],
      'join',
      [],
      hosts.map((h) => ({ FAKE_HOST: h })),
    );
    const tables = await Promise.all(ps.map((p) => waitForJson<Joined>(p, 'joined')));
    expect(tables[0].rank).toBe(4);
    const t = tables[0];
    // Unranked hostA workers take 0,1,2 and the unranked hostB worker 3; rank 4 was given.
    expect(t.peers.map((p) => p.host)).toEqual(['hostA', 'hostA', 'hostA', 'hostB', 'hostB']);
    expect(t.hosts).toEqual({ hostA: [0, 1, 2], hostB: [3, 4] });
    expect(t.peers.map((p) => [p.localRank, p.localSize])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
      [0, 2],
      [1, 2],
    ]);
  });

  it('rejects a duplicate rank, a disagreeing size, a join to a frozen job, and times out a short job', async () => {
    const id = job();
    const [a] = workers(id, 2, [0]);
    await a.waitFor(/^/, 100).catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
    const [dup] = workers(id, 2, [0]);
    const dupErr = await waitForJson<{ code: string; message: string }>(dup, 'error');
    expect(dupErr.code).toBe('RINGWIRE_ERR_RENDEZVOUS');
    expect(dupErr.message).toMatch(/rank 0 is already taken/);
    const [bad] = workers(id, 3, ['-']);
    const sizeErr = await waitForJson<{ message: string }>(bad, 'error');
    expect(sizeErr.message).toMatch(/size mismatch: this worker says 3, the job was started with 2/);
    const [b] = workers(id, 2, [1]);
    await Promise.all([waitForJson(a, 'joined'), waitForJson(b, 'joined')]);
    const [late] = workers(id, 2, ['-']);
    expect((await waitForJson<{ message: string }>(late, 'error')).message).toMatch(
      /is frozen \(generation \d+/,
    );
    const [lonely] = workers(job(), 3, [2], 'join', [], [{ JOIN_TIMEOUT: '500' }]);
    const t = await waitForJson<{ code: string; message: string }>(lonely, 'error');
    expect(t.code).toBe('RINGWIRE_ERR_RENDEZVOUS');
    expect(t.message).toMatch(/join timed out after 500 ms: 1 of 3 workers had joined/);
  });

  it('a job id can be reused after all members left, with the next generation', async () => {
    const id = job();
    const first = await Promise.all(
      workers(id, 2, ['-', '-'], 'close').map((p) => waitForJson<Joined>(p, 'joined')),
    );
    await new Promise((r) => setTimeout(r, 300));
    const second = await Promise.all(
      workers(id, 2, ['-', '-'], 'close').map((p) => waitForJson<Joined>(p, 'joined')),
    );
    expect(second[0].generation).toBe(first[0].generation + 1);
  });
});

describe('key-value store', () => {
  it('set, get, add, compareAndSet, delete; a blocking get released by a later set; its timeout', async () => {
    const id = job();
    const a = await RendezvousClient.connect({ url, job: id, token: TOKEN });
    const b = await RendezvousClient.connect({ url, job: id, token: TOKEN });
    try {
      expect(await a.get('missing')).toBeNull();
      await a.set('k', { x: 1, list: [1, 2] });
      expect(await b.get('k')).toEqual({ x: 1, list: [1, 2] });
      const bytes = new Uint8Array([1, 2, 3, 250]);
      await a.set('bytes', bytes);
      expect(Array.from((await b.get<Uint8Array>('bytes'))!)).toEqual([1, 2, 3, 250]);
      expect(
        await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).add('ctr'))),
      ).toHaveLength(20);
      expect(await a.get('ctr')).toBe(20);
      expect(await a.add('ctr', -5)).toBe(15);
      expect(await a.compareAndSet('lock', null, 'a')).toEqual({ swapped: true, value: 'a' });
      expect(await b.compareAndSet('lock', null, 'b')).toEqual({ swapped: false, value: 'a' });
      expect(await b.compareAndSet('lock', 'a', 'b')).toEqual({ swapped: true, value: 'b' });
      expect(await a.delete('lock')).toBe(true);
      expect(await a.delete('lock')).toBe(false);
      const t0 = Date.now();
      const waiting = b.get('later', { wait: true, timeoutMs: 5000 });
      setTimeout(() => void a.set('later', 'here'), 300);
      expect(await waiting).toBe('here');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      const t1 = Date.now();
      await expect(b.get('never', { wait: true, timeoutMs: 300 })).rejects.toMatchObject({
        code: 'RINGWIRE_ERR_TIMEOUT',
        message: expect.stringMatching(/"never": no value after 300 ms/),
      });
      expect(Date.now() - t1).toBeLessThan(2000);
      // Jobs are isolated from each other.
      const other = await RendezvousClient.connect({ url, job: job(), token: TOKEN });
      expect(await other.get('k')).toBeNull();
      await other.close();
      await expect(a.add('k')).rejects.toMatchObject({ code: 'RINGWIRE_ERR_INVALID_ARG' });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('barrier and liveness', () => {
  it('a barrier across 4 processes releases nobody before the last arrives', async () => {
    const ps = workers(job(), 4, ['-', '-', '-', '-'], 'barrier', ['3']);
    expect(await Promise.all(ps.map((p) => p.exited))).toEqual([0, 0, 0, 0]);
    const results = ps.map((p) => jsonEvents<{ round: number; at: number }>(p, 'barrier'));
    for (let i = 0; i < 3; i++) {
      const times = results.map((r) => r.find((x) => x.round === i)!.at);
      expect(Math.max(...times) - Math.min(...times)).toBeLessThan(150);
    }
  });

  it('SIGKILL of a member: every other member gets abort naming it within 3 s', async () => {
    const ps = workers(job(), 4, [0, 1, 2, 3], 'hold');
    await Promise.all(ps.map((p) => waitForJson(p, 'holding')));
    const t0 = Date.now();
    ps[2].child.kill('SIGKILL');
    const aborts = await Promise.all(
      [0, 1, 3].map((i) => waitForJson<{ rank: number; code: string; reason: string }>(ps[i], 'abort', 3000)),
    );
    expect(Date.now() - t0).toBeLessThan(3000);
    for (const a of aborts) {
      expect(a.rank).toBe(2);
      expect(a.code).toBe('RINGWIRE_ERR_PEER_LOST');
      expect(a.reason).toMatch(/rank 2 .*lost: connection closed/);
    }
  });

  it('a member that stops sending heartbeats is declared lost', async () => {
    const id = job();
    const a = await RendezvousClient.connect({ url, job: id, token: TOKEN, heartbeatIntervalMs: 100 });
    const mute = await RendezvousClient.connect({ url, job: id, token: TOKEN, heartbeatIntervalMs: 1e9 });
    const got = new Promise<{ rank: number; reason: string }>((r) => a.once('abort', r));
    await Promise.all([
      a.join({ size: 2, rank: 0, host: 'h', port: 1 }),
      mute.join({ size: 2, rank: 1, host: 'h', port: 2 }),
    ]);
    const ev = await got;
    expect(ev.rank).toBe(1);
    expect(ev.reason).toMatch(/no heartbeat for 1500 ms/);
    await a.close();
    await mute.close();
  });

  it('a reported failure reaches every member with its code', async () => {
    const id = job();
    const cs = await Promise.all(
      [0, 1, 2].map(() => RendezvousClient.connect({ url, job: id, token: TOKEN })),
    );
    await Promise.all(cs.map((c, i) => c.join({ size: 3, rank: i, host: 'h', port: 10 + i })));
    const evs = cs.map(
      (c) => new Promise<{ rank: number; code: string; reason: string }>((r) => c.once('abort', r)),
    );
    await cs[1].reportFailure('mismatch at op 7', { code: 'RINGWIRE_ERR_MISMATCH' });
    for (const e of await Promise.all(evs))
      expect(e).toEqual({ rank: 1, code: 'RINGWIRE_ERR_MISMATCH', reason: 'mismatch at op 7' });
    await Promise.all(cs.map((c) => c.close()));
  });
});

describe('security and robustness', () => {
  it('rejects a wrong or missing token without disturbing the job', async () => {
    const id = job();
    const good = await RendezvousClient.connect({ url, job: id, token: TOKEN });
    await expect(RendezvousClient.connect({ url, job: id, token: 'wrong' })).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_AUTH',
    });
    await expect(RendezvousClient.connect({ url, job: id })).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_AUTH',
    });
    await good.set('still', 'fine');
    expect(await good.get('still')).toBe('fine');
    await good.close();
  });

  it('1,000 junk connections and frames while a real job forms and runs barriers', async () => {
    const ps = workers(job(), 4, ['-', '-', '-', '-'], 'barrier', ['5']);
    const port = new URL(url).port;
    const junk = async (i: number) => {
      const kind = i % 5;
      if (kind === 0) {
        // Raw TCP garbage, sometimes an HTTP-looking prefix.
        await new Promise<void>((resolve) => {
          const s = netConnect(Number(port), '127.0.0.1', () =>
            s.end(
              i % 2
                ? randomBytes(1 + (i % 300))
                : Buffer.from(`GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n${'x'.repeat(i)}`),
            ),
          );
          s.resume(); // drain the server's 400 so 'close' can fire
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          s.setTimeout(3000, () => s.destroy());
        });
        return;
      }
      await new Promise<void>((resolve) => {
        const ws = new WebSocket(url);
        const done = () => (ws.terminate(), resolve());
        const timer = setTimeout(done, 3000);
        ws.on('error', done);
        ws.on('close', () => (clearTimeout(timer), resolve()));
        ws.on('open', () => {
          if (kind === 1) ws.send(randomBytes(1 + (i % 64)));
          else if (kind === 2)
            ws.send(encode({ t: 'hello', job: 'x', proof: randomBytes(32) }).subarray(0, 5 + (i % 10)));
          else if (kind === 3)
            ws.send(encode({ t: 'req', id: 1, op: 'join', size: 4, host: 'evil', port: 1 }));
          else ws.send(`text frame ${i}`);
        });
      });
    };
    for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => junk(i + k)));
    // An oversized frame closes only its own connection.
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(url);
      ws.on('open', () => ws.send(Buffer.alloc(5 * 1024 * 1024)));
      ws.on('close', (code) => (expect([1006, 1009]).toContain(code), resolve()));
      ws.on('error', () => {});
    });
    expect(await Promise.all(ps.map((p) => p.exited))).toEqual([0, 0, 0, 0]);
    for (const p of ps) expect(jsonEvents(p, 'barrier')).toHaveLength(5);
    for (const p of ps) expect(p.lines.some((l) => l.includes('"event":"abort"'))).toBe(false);
  });

  it('refuses a non-loopback bind without a token', async () => {
    const s = new RendezvousServer({ host: '0.0.0.0', port: 0 });
    await expect(s.listen()).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_RENDEZVOUS',
      message: expect.stringMatching(/refusing to bind 0\.0\.0\.0 without a token/),
    });
  });

  it("serves a job's status as JSON on plain HTTP GET to the holder of its credential", async () => {
    const id = job();
    const cs = await Promise.all([0, 1].map(() => RendezvousClient.connect({ url, job: id, token: TOKEN })));
    await Promise.all(cs.map((c, i) => c.join({ size: 2, rank: i, host: 'h', port: 100 + i })));
    const res = await fetch(`${url.replace('ws:', 'http:')}/status`, {
      headers: { authorization: `Bearer ${jobCredential(TOKEN, id)}` },
    });
    const body = (await res.json()) as {
      details: { id: string; state: string; size: number; members: { rank: number; alive: boolean }[] }[];
    };
    expect(body.details).toHaveLength(1);
    const j = body.details[0];
    expect(j.state).toBe('running');
    expect(j.size).toBe(2);
    expect(j.members.map((m) => [m.rank, m.alive])).toEqual([
      [0, true],
      [1, true],
    ]);
    await Promise.all(cs.map((c) => c.close()));
  });
});

describe('standalone server', () => {
  it('ringwire-rendezvous starts and answers the status request; bad flags are refused', async () => {
    const p = spawnNode(CLI, ['--port', '0']);
    const line = await p.waitFor(/listening on ws:\/\/127\.0\.0\.1:\d+/);
    const port = /:(\d+) /.exec(line)![1];
    const res = await fetch(`http://127.0.0.1:${port}/status`);
    expect(await res.json()).toEqual({ ok: true, jobs: 0 });
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    const bad = spawnNode(CLI, ['--port', 'abc']);
    expect(await bad.exited).not.toBe(0);
    expect(bad.stderr.join('\n')).toMatch(/--port.*must be an integer/);
    const open = spawnNode(CLI, ['--host', '0.0.0.0', '--port', '0']);
    expect(await open.exited).not.toBe(0);
    expect(open.stderr.join('\n')).toMatch(/without a token/);
  });
});
