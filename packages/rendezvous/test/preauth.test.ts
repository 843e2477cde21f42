// The standalone rendezvous under attack by strangers without the token (loopback only):
// memory before authentication is bounded, pending connections are capped, and what strangers
// send reaches its stderr escaped and rate-limited.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '@ringwire/common';
import { decode, encode } from '@ringwire/rendezvous';
import {
  capAttack,
  disconnect,
  killAll,
  memoryAttack,
  spawnNode,
  until,
  waitForJson,
} from '@ringwire/testing';
import { afterAll, expect, it } from 'vitest';
import WebSocket from 'ws';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));
const TOKEN = 'preauth-token';
const dir = mkdtempSync(join(tmpdir(), 'ringwire-preauth-'));
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** A stranger's hello for `job` with a wrong proof: the server refuses it. */
function strangerHello(url: string, job: string): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('error', () => {});
    ws.on('close', () => resolve());
    ws.once('message', (data: Buffer) => {
      const { nonce } = decode(data) as { nonce: Uint8Array };
      ws.send(encode({ t: 'hello', job, proof: nonce }));
    });
    setTimeout(() => (ws.terminate(), resolve()), 5_000).unref();
  });
}

it('the rendezvous survives strangers before authentication: bounded memory, capped pending, escaped logs', async () => {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
  const server = spawnNode(CLI, ['--port', '0', '--token-file', tokenFile]);
  const url = /listening on (ws:\/\/\S+)/.exec(await server.waitFor(/listening on/))![1]!;
  const port = Number(new URL(url).port);
  const pid = server.child.pid!;

  // Log injection, then a flood of junk: escaped, and a bounded number of lines.
  await strangerHello(url, '\n\r\x1b[31mringrun: all ranks finished OK');
  await Promise.all(Array.from({ length: 200 }, () => strangerHello(url, 'junk')));
  await until(() => server.stderr.some((l) => l.includes('junk')), 5_000);
  const stderr = server.stderr.join('\n');
  expect(stderr).toContain('ringrun: all ranks finished OK');
  expect(stderr).not.toContain('\x1b');
  expect(server.stderr.filter((l) => l.startsWith('ringrun'))).toEqual([]);
  expect(server.stderr.length).toBeLessThanOrEqual(DEFAULTS.refusalLogLimit + 1);

  // 500 strangers each hold a partial 1 MB message; then they go.
  const { baseline, attacked, dropped, after } = await memoryAttack(port, pid);
  // More idle strangers than the cap: the oldest are dropped, the newest kept.
  const cap = DEFAULTS.maxPendingConnections;
  const { first, second } = await capAttack(port, cap);
  const firstClosed = first.filter((a) => a.closed).length;
  const secondClosed = second.filter((a) => a.closed).length;

  // Real workers connect while the cap is full: the job forms.
  const job = `preauth-${process.pid}`;
  const workers = [0, 1].map((r) => spawnNode(WORKER, [url, job, TOKEN, '2', String(r), 'join']));
  const joined = await Promise.all(workers.map((w) => waitForJson<{ rank: number }>(w, 'joined')));
  await disconnect([...first, ...second]);
  console.log(
    `rendezvous RSS: ${baseline.toFixed(0)} MB before, ${attacked.toFixed(0)} MB under 500 partial 1 MB ` +
      `messages (${dropped} dropped), ${after.toFixed(0)} MB after; idle connections dropped: ` +
      `${firstClosed} of the ${cap} oldest, ${secondClosed} of the 50 newest`,
  );
  expect(joined.map((j) => j.rank)).toEqual([0, 1]);
  expect(dropped).toBe(500);
  expect(attacked - baseline).toBeLessThan(64);
  expect(after - baseline).toBeLessThan(64);
  expect(firstClosed).toBeGreaterThanOrEqual(50);
  expect(secondClosed).toBe(0);
}, 120_000);
