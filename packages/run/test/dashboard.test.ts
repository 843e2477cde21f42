import { fileURLToPath } from 'node:url';
import { eventually, killAll } from '@ringwire/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE, ringrun, waitEvents } from './helpers.js';

// `ringrun --dashboard` prints the URL of its rendezvous's live job page, with the job's token;
// the same token reads the job's /metrics.

const OBSERVED = fileURLToPath(new URL('../../rendezvous/test/fixtures/observed.mjs', import.meta.url));

afterEach(killAll);

describe('ringrun --dashboard', () => {
  it('prints the live job page URL, which opens the page and, as a bearer token, /metrics', async () => {
    const p = ringrun(['--dashboard', '-np', '2', NODE, OBSERVED, 'ten'], {
      RINGWIRE_METRICS_INTERVAL_MS: '200',
    });
    let url = '';
    await eventually(
      () => !!(url = p.stderr.map((l) => /live job page: (\S+)/.exec(l)?.[1]).find(Boolean) ?? ''),
      15_000,
      'ringrun printed the URL',
    );
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
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
});
