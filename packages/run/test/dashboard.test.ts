import { fileURLToPath } from 'node:url';
import { eventually, killAll, type Proc } from '@ringwire/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE, ringrun, waitEvents } from './helpers.js';

// `ringrun --dashboard` prints the URL of its rendezvous's live job page, with the job's token;
// the same token reads the job's /metrics.

const OBSERVED = fileURLToPath(new URL('../../rendezvous/test/fixtures/observed.mjs', import.meta.url));
const ELASTIC = fileURLToPath(new URL('../../core/test/fixtures/elastic.mjs', import.meta.url));

afterEach(killAll);

/** The live job page URL ringrun printed (with the job's token). */
async function pageUrl(p: Proc): Promise<string> {
  let url = '';
  await eventually(
    () => !!(url = p.stderr.map((l) => /live job page: (\S+)/.exec(l)?.[1]).find(Boolean) ?? ''),
    15_000,
    'ringrun printed the URL',
  );
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
  return url;
}

describe('ringrun --dashboard', () => {
  it('prints the live job page URL, which opens the page and, as a bearer token, /metrics', async () => {
    const p = ringrun(['--dashboard', '-np', '2', NODE, OBSERVED, 'ten'], {
      RINGWIRE_METRICS_INTERVAL_MS: '200',
    });
    const url = await pageUrl(p);
    await waitEvents(p, 'done', 2, 30_000);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script src="/dashboard.js"');
    const token = new URL(url).searchParams.get('token');
    await eventually(
      async () => {
        const res = await fetch(new URL('/metrics', url), { headers: { authorization: `Bearer ${token}` } });
        return /ringwire_operations_total\{[^}]*rank="1"[^}]*\} 10\n/.test(await res.text());
      },
      10_000,
      '/metrics shows the ops of rank 1',
    );
    p.child.kill('SIGTERM'); // ringrun stops its workers
    await p.exited;
    // Off by default.
    const plain = ringrun(['-np', '1', NODE, '-e', '']);
    expect(await plain.exited).toBe(0);
    expect(plain.stderr.join('\n')).not.toContain('live job page');
  });

  it('elastic jobs too: the page, and /status with the generation and its history', async () => {
    const p = ringrun(['--dashboard', '--min-np', '1', '-np', '2', '-x', 'STEPS=400', NODE, ELASTIC], {
      RINGWIRE_ELASTIC_SETTLE_MS: '300',
      RINGWIRE_NO_NATIVE: '1',
    });
    const url = await pageUrl(p);
    const token = new URL(url).searchParams.get('token');
    let status = '';
    await eventually(
      async () => {
        const res = await fetch(new URL('/status', url), { headers: { authorization: `Bearer ${token}` } });
        status = await res.text();
        return status.includes('"state":"running"');
      },
      15_000,
      'the generation formed',
    );
    // (The credential opens the page once its job exists on the rendezvous.)
    expect((await fetch(url)).status).toBe(200);
    expect(status).toContain('"elastic":{"min":1,"max":2');
    expect(status).toMatch(/"history":\[\{"generation":1,/);
    p.child.kill('SIGTERM');
    await p.exited;
  });
});
