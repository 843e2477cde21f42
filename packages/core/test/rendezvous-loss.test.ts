import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RendezvousClient } from '@ringwire/rendezvous';
import type { Check, ErrorEvent } from '@ringwire/testing';
import {
  freePort,
  jsonEvents,
  killAll,
  type Proc,
  sigkill,
  spawnNode,
  startStandalone,
  waitForJson,
} from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

// A running job does not need the rendezvous: when the standalone `ringwire-rendezvous` is
// SIGKILLed mid-job its all-reduces go on (and a dead rank still fails the others at once);
// restarted on the same port, every rank re-registers and the key-value store works again.

const LOOP = fileURLToPath(new URL('./fixtures/rdzv-loop.mjs', import.meta.url));
const TOKEN = 'rendezvous-loss-token';
let dir: string;
let tokenFile: string;
let jobN = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ringwire-rdzv-loss-'));
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => killAll());

/** Starts a job of `size` looping workers against the rendezvous on `port`. */
function startLoop(size: number, port: number, env: Record<string, string> = {}) {
  const job = `rdzv-loss-${process.pid}-${++jobN}`;
  const stopFile = join(dir, `${job}.stop`);
  const procs = Array.from({ length: size }, (_, r) =>
    spawnNode(LOOP, [], {
      RINGWIRE_RANK: String(r),
      RINGWIRE_SIZE: String(size),
      RINGWIRE_LOCAL_RANK: String(r),
      RINGWIRE_LOCAL_SIZE: String(size),
      RINGWIRE_RENDEZVOUS: `ws://127.0.0.1:${port}`,
      RINGWIRE_JOB_ID: job,
      RINGWIRE_TOKEN: TOKEN,
      STOP_FILE: stopFile,
      ...env,
    }),
  );
  return { job, procs, stop: () => writeFileSync(stopFile, '') };
}

/** The last iteration a worker reported. */
const progress = (p: Proc) => Math.max(-1, ...jsonEvents<{ k: number }>(p, 'progress').map((e) => e.k));

/** Waits until every worker has reported `more` iterations past where it was. */
async function advances(procs: Proc[], more: number, ms: number): Promise<void> {
  const from = procs.map(progress);
  const deadline = Date.now() + ms;
  while (procs.some((p, i) => progress(p) < from[i] + more)) {
    const errs = procs.flatMap((p) => jsonEvents<ErrorEvent>(p, 'error'));
    if (errs.length) throw new Error(`a rank failed: ${JSON.stringify(errs)}`);
    if (Date.now() > deadline)
      throw new Error(`no progress within ${ms} ms: ${procs.map(progress)} (from ${from})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Status = { jobs: { id: string; generation: number; members: { rank: number; alive: boolean }[] }[] };

/** Waits until the rendezvous' /status shows `job` with all `size` members alive again. */
async function reRegistered(port: number, job: string, size: number, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const headers = { authorization: `Bearer ${TOKEN}` }; // the secret: every job's details
    const body = (await (await fetch(`http://127.0.0.1:${port}/status`, { headers })).json()) as {
      details?: Status['jobs'];
    };
    const s: Status = { jobs: body.details ?? [] };
    const j = s.jobs.find((x) => x.id === job);
    if (j && j.members.length === size && j.members.every((m) => m.alive)) return j;
    if (Date.now() > deadline) throw new Error(`job ${job} not back in /status: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the rendezvous is SIGKILLed mid-job', () => {
  it('all-reduces go on with correct results; restarted on the same port, the ranks re-register and the KV store works', async () => {
    const port = await freePort();
    let server = await startStandalone(port, tokenFile);
    const { job, procs, stop } = startLoop(3, port);
    await Promise.all(procs.map((p) => waitForJson(p, 'ready', 30_000)));
    await advances(procs, 20, 20_000);
    await sigkill(server);
    await advances(procs, 40, 20_000);
    server = await startStandalone(port, tokenFile);
    const j = await reRegistered(port, job, 3, 10_000);
    expect(j.generation).toBe(1);
    expect(j.members.map((m) => m.rank)).toEqual([0, 1, 2]);
    const c = await RendezvousClient.connect({ url: `ws://127.0.0.1:${port}`, job, token: TOKEN });
    await c.set('back', 'yes');
    expect(await c.get('back')).toBe('yes');
    await c.close();
    await advances(procs, 20, 20_000);
    stop();
    const codes = await Promise.all(procs.map((p) => p.exited));
    const output = procs
      .map((p, r) => `--- rank ${r}\n${p.lines.join('\n')}\n${p.stderr.join('\n')}`)
      .join('\n');
    expect(codes, output).toEqual([0, 0, 0]);
    for (const p of procs) {
      expect(jsonEvents<Check>(p, 'check').map((c) => c.ok)).toEqual([true]);
      expect(p.stderr.join('\n')).toMatch(/reconnected to the rendezvous after \d+ ms and re-registered/);
    }
    await sigkill(server);
  }, 90_000);

  it('a rank killed while it is down still fails the others within 3 s with PEER_LOST naming it', async () => {
    const port = await freePort();
    const server = await startStandalone(port, tokenFile);
    const { procs } = startLoop(3, port);
    await Promise.all(procs.map((p) => waitForJson(p, 'ready', 30_000)));
    await advances(procs, 10, 20_000);
    await sigkill(server);
    await advances(procs, 10, 20_000);
    const t0 = Date.now();
    procs[2].child.kill('SIGKILL');
    const errs = await Promise.all([0, 1].map((r) => waitForJson<ErrorEvent>(procs[r], 'error', 3_000)));
    expect(Date.now() - t0).toBeLessThan(3_000);
    for (const e of errs) expect(e).toMatchObject({ code: 'RINGWIRE_ERR_PEER_LOST', rank: 2 });
    expect(await Promise.all([procs[0].exited, procs[1].exited])).toEqual([1, 1]);
  }, 60_000);

  it('if it never comes back, the job warns once its connect timeout has passed, finishes and closes', async () => {
    const port = await freePort();
    const server = await startStandalone(port, tokenFile);
    const { procs, stop } = startLoop(3, port, { CONNECT_TIMEOUT: '1500' });
    await Promise.all(procs.map((p) => waitForJson(p, 'ready', 30_000)));
    await sigkill(server);
    const t0 = Date.now();
    while (!procs.every((p) => p.stderr.some((l) => /unreachable for 1500 ms/.test(l)))) {
      if (Date.now() - t0 > 10_000) throw new Error('no warning that the rendezvous is lost');
      await new Promise((r) => setTimeout(r, 50));
    }
    await advances(procs, 10, 20_000);
    stop();
    const t1 = Date.now();
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0]);
    expect(Date.now() - t1).toBeLessThan(5_000);
  }, 60_000);
});
