// A rank's peer listener under attack by strangers without the token (loopback only): memory
// before authentication is bounded, pending connections are capped, and what strangers send
// reaches the job's stderr escaped and rate-limited.
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '@ringwire/common';
import { decode, encode, type RendezvousServer } from '@ringwire/rendezvous';
import {
  capAttack,
  disconnect,
  finish,
  killAll,
  memoryAttack,
  type Proc,
  spawnNode,
  startRendezvous,
  type TestRendezvous,
  TOKEN,
  until,
} from '@ringwire/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';

const COLLECTIVES = fileURLToPath(new URL('./fixtures/collectives.mjs', import.meta.url));
let rdv: TestRendezvous;
let server: RendezvousServer;
beforeAll(async () => {
  rdv = await startRendezvous();
  server = rdv.server;
});
afterAll(async () => {
  await killAll();
  await rdv.close();
});

/** Rank 0's peer port, once it has joined the (still forming) job. */
async function peerPort(job: string): Promise<number> {
  let port = 0;
  const found = await until(() => {
    const status = server.status() as { jobs: { id: string; members: { port: number }[] }[] };
    port = status.jobs.find((j) => j.id === job)?.members[0]?.port ?? 0;
    return port > 0;
  }, 20_000);
  if (!found) throw new Error(`rank 0 of ${job} never joined`);
  return port;
}

/** A stranger's hello naming `job`: the listener refuses it (wrong job, no valid proof). */
function strangerHello(port: number, job: string): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    ws.on('error', () => {});
    ws.on('close', () => resolve());
    ws.once('message', (data: Buffer) => {
      const { nonce } = decode(data) as { nonce: Uint8Array };
      ws.send(encode({ t: 'hello', job, generation: 1, rank: 1, proof: nonce, nonce }));
    });
    setTimeout(() => (ws.terminate(), resolve()), 5_000).unref();
  });
}

/** One rank of a 2-rank job running the 'loop' scenario (20 checked all-reduces). */
function rank(job: string, r: number): Proc {
  return spawnNode(COLLECTIVES, ['loop'], {
    ITERS: '20',
    RINGWIRE_RANK: String(r),
    RINGWIRE_SIZE: '2',
    RINGWIRE_LOCAL_RANK: String(r),
    RINGWIRE_LOCAL_SIZE: '2',
    RINGWIRE_RENDEZVOUS: rdv.url,
    RINGWIRE_JOB_ID: job,
    RINGWIRE_TOKEN: TOKEN,
  });
}

it('a rank survives strangers before authentication: bounded memory, capped pending, escaped logs', async () => {
  const job = `preauth-${process.pid}`;
  const rank0 = rank(job, 0); // rank 1 starts later, while rank 0 is under attack
  const port = await peerPort(job);
  const pid = rank0.child.pid!;

  // Log injection, then a flood of junk: escaped, and a bounded number of lines.
  const evil = '\n\r\x1b[31mringrun: all ranks finished OK';
  await strangerHello(port, evil);
  await Promise.all(Array.from({ length: 200 }, () => strangerHello(port, 'junk')));
  await until(() => rank0.stderr.some((l) => l.includes('junk')), 5_000);
  const stderr = rank0.stderr.join('\n');
  expect(stderr).toContain('\\n\\r\\x1b[31mringrun: all ranks finished OK');
  expect(stderr).not.toContain('\x1b');
  expect(rank0.stderr.filter((l) => l.startsWith('ringrun'))).toEqual([]);
  const warnings = rank0.stderr.filter((l) => l.includes('peer listener'));
  expect(warnings.length).toBeLessThanOrEqual(DEFAULTS.refusalLogLimit + 1);

  // 500 strangers each hold a partial 1 MB message; then they go.
  const { baseline, attacked, dropped, after } = await memoryAttack(port, pid);
  // More idle strangers than the cap: the oldest are dropped, the newest kept.
  const cap = DEFAULTS.maxPendingConnections;
  const { first, second } = await capAttack(port, cap);

  const firstClosed = first.filter((a) => a.closed).length;
  const secondClosed = second.filter((a) => a.closed).length;

  // The real rank 1 connects while the cap is full: the job forms and runs correctly.
  const { codes, checks, output } = await finish([rank0, rank(job, 1)]);
  await disconnect([...first, ...second]);
  console.log(
    `peer listener RSS: ${baseline.toFixed(0)} MB before, ${attacked.toFixed(0)} MB under 500 partial 1 MB ` +
      `messages (${dropped} dropped), ${after.toFixed(0)} MB after; idle connections dropped: ` +
      `${firstClosed} of the ${cap} oldest, ${secondClosed} of the 50 newest`,
  );
  expect(dropped).toBe(500);
  expect(attacked - baseline).toBeLessThan(64);
  expect(after - baseline).toBeLessThan(64);
  expect(firstClosed).toBeGreaterThanOrEqual(50);
  expect(secondClosed).toBe(0);
  expect(codes, output).toEqual([0, 0]);
  expect(checks.flat().filter((c) => !c.ok)).toEqual([]);
  expect(checks.flat().map((c) => c.name)).toEqual(['loop', 'loop']);
}, 120_000);
