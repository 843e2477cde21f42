import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jobCredential, RendezvousClient } from '@ringwire/rendezvous';
import { killAll, type Proc, spawnNode, waitForJson } from '@ringwire/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const KV = fileURLToPath(new URL('./fixtures/kv.mjs', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'rdzv-isolation-'));
const secretFile = join(dir, 'secret');
const SECRET = 'the-server-secret';
let server: Proc;
let url: string;
let http: string;
const credA = () => issue('job-A');
const credB = () => issue('job-B');

/** `ringwire-rendezvous token --job ID --secret-file F`, as an operator runs it. */
function issue(job: string): string {
  return execFileSync(process.execPath, [CLI, 'token', '--job', job, '--secret-file', secretFile], {
    encoding: 'utf8',
    timeout: 10_000,
  }).trim();
}

/** One KV operation from a real client process: its result or its error. */
async function kv(job: string, credential: string, ...args: string[]) {
  const p = spawnNode(KV, [url, job, credential, ...args]);
  const line = await p.waitFor(/^\{"event":"(ok|error)"/, 15_000);
  await p.exited;
  return JSON.parse(line) as { event: 'ok' | 'error'; value?: unknown; code?: string };
}

async function status(bearer?: string) {
  const res = await fetch(`${http}/status`, {
    headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
  });
  return { code: res.status, text: await res.text() };
}

beforeAll(async () => {
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  server = spawnNode(CLI, ['--port', '0', '--secret-file', secretFile]);
  const line = await server.waitFor(/listening on ws:\/\/127\.0\.0\.1:\d+/);
  url = /(ws:\/\/\S+)/.exec(line)![1];
  http = url.replace('ws:', 'http:');
});
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('per-job credentials', () => {
  it('the token command prints HMAC-SHA256(secret, "ringwire-job:" + id), different per job', () => {
    const a = credA();
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).toBe(jobCredential(SECRET, 'job-A'));
    expect(credB()).not.toBe(a);
    // From the environment instead of a file.
    const fromEnv = execFileSync(process.execPath, [CLI, 'token', '--job', 'job-A'], {
      encoding: 'utf8',
      env: { ...process.env, RINGWIRE_RENDEZVOUS_SECRET: SECRET },
      timeout: 10_000,
    }).trim();
    expect(fromEnv).toBe(a);
  });

  it("a worker of job A with A's credential can neither read nor write job B's store", async () => {
    expect(await kv('job-B', credB(), 'set', 'weights', 'B-secret')).toMatchObject({ event: 'ok' });
    expect(await kv('job-A', credA(), 'set', 'weights', 'A-value')).toMatchObject({ event: 'ok' });
    // Naming job B with A's credential: refused at the hello, before any operation.
    expect(await kv('job-B', credA(), 'get', 'weights')).toMatchObject({
      event: 'error',
      code: 'RINGWIRE_ERR_AUTH',
    });
    expect(await kv('job-B', credA(), 'set', 'weights', 'overwritten')).toMatchObject({
      event: 'error',
      code: 'RINGWIRE_ERR_AUTH',
    });
    // Each job's store is its own and B's is untouched.
    expect(await kv('job-A', credA(), 'get', 'weights')).toEqual({ event: 'ok', value: 'A-value' });
    expect(await kv('job-B', credB(), 'get', 'weights')).toEqual({ event: 'ok', value: 'B-secret' });
  });

  it('/status shows liveness only without a credential, and one job only with its credential', async () => {
    const a = credA();
    const member = spawnNode(WORKER, [url, 'job-A', a, '1', '0', 'hold'], { FAKE_HOST: 'host-of-A' });
    const joined = await waitForJson<{ peers: { port: number }[] }>(member, 'joined');
    const port = joined.peers[0].port;

    const open = await status();
    expect(open.code).toBe(200);
    const body = JSON.parse(open.text);
    expect(body).toEqual({ ok: true, jobs: expect.any(Number) });
    expect(body.jobs).toBeGreaterThanOrEqual(2);
    for (const leak of ['job-A', 'job-B', 'host-of-A', String(port)]) expect(open.text).not.toContain(leak);

    const mine = await status(a);
    expect(mine.code).toBe(200);
    const details = JSON.parse(mine.text).details as {
      id: string;
      members: { host: string; port: number }[];
    }[];
    expect(details.map((j) => j.id)).toEqual(['job-A']);
    expect(details[0].members).toMatchObject([{ host: 'host-of-A', port, alive: true }]);
    expect(mine.text).not.toContain('job-B');

    expect(JSON.parse((await status(credB())).text).details.map((j: { id: string }) => j.id)).toEqual([
      'job-B',
    ]);
    expect((await status('not-a-credential')).code).toBe(401);
    expect((await status(jobCredential('another-secret', 'job-A'))).code).toBe(401);
    // The server's own secret sees every job (the operator's view).
    const all = JSON.parse((await status(SECRET)).text).details.map((j: { id: string }) => j.id);
    expect(all.sort()).toEqual(['job-A', 'job-B']);
    member.child.kill('SIGKILL');
    await member.exited;
  });

  it("workers holding the server's secret itself still authenticate (compatibility), with a warning", async () => {
    const c = await RendezvousClient.connect({ url, job: 'job-legacy', token: SECRET });
    await c.set('k', 1);
    expect(await c.get('k')).toBe(1);
    await c.close();
    await expect(
      RendezvousClient.connect({ url, job: 'job-legacy', token: 'wrong', connectTimeoutMs: 5000 }),
    ).rejects.toMatchObject({ code: 'RINGWIRE_ERR_AUTH' });
    const deadline = Date.now() + 5000;
    while (
      !server.stderr.some((l) => l.includes('job "job-legacy" authenticated with the server\'s secret'))
    ) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});
