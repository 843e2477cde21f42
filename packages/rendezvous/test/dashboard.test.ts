import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jobCredential } from '@ringwire/rendezvous';
import {
  eventually,
  killAll,
  type Proc,
  sigkill,
  startRanks,
  startRendezvous,
  type TestRendezvous,
  waitForJson,
} from '@ringwire/testing';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The live job page in a real browser: Debian's Chromium (`.ci/run` installs it) driven by
// playwright-core, headless, watching a real 4-rank job on two loopback "hosts".

const CHROMIUM = '/usr/bin/chromium';
const FIXTURE = fileURLToPath(new URL('./fixtures/observed.mjs', import.meta.url));
/** Where the test leaves its screenshot of the running job (the README's docs/dashboard.png). */
export const SCREENSHOT = join(tmpdir(), 'ringwire-dashboard.png');

describe.skipIf(!existsSync(CHROMIUM))('the live job page (Chromium)', () => {
  let rdv: TestRendezvous;
  let http: string;
  let profile: string;
  let browser: BrowserContext;
  let page: Page;
  let procs: Proc[];
  let job: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    rdv = await startRendezvous();
    http = rdv.url.replace('ws:', 'http:');
    profile = mkdtempSync(join(tmpdir(), 'ringwire-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 900, height: 380 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = await browser.newPage();
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    // Rank 3 stops taking part 4 s in: the others stall on it (their warning comes after 1 s).
    ({ procs, job } = startRanks(rdv, FIXTURE, 4, {
      args: ['loop'],
      env: { RINGWIRE_METRICS_INTERVAL_MS: '250', STALL_RANK: '3', STALL_AFTER_MS: '4000' },
      perRank: (r) => ({ RINGWIRE_HOST: r < 2 ? '127.0.0.1' : '127.0.0.2' }),
    }));
    await Promise.all(procs.map((p) => waitForJson(p, 'ready', 30_000)));
  });

  afterAll(async () => {
    await browser?.close();
    rmSync(profile, { recursive: true, force: true });
    await killAll();
    await rdv?.close();
  });

  const ops = async (rank: number) =>
    Number(
      /(\d+) ops/.exec((await page.locator(`.rank[data-rank="${rank}"] .nums`).textContent()) ?? '')?.[1],
    );

  it('loads without console errors, shows every rank by host, and updates while the job runs', async () => {
    const res = await page.goto(`${http}/?token=${jobCredential(rdv.token, job)}`);
    expect(res?.status()).toBe(200);
    await page.locator('#conn.live').waitFor({ timeout: 10_000 });
    await page.locator('.rank').nth(3).waitFor({ timeout: 10_000 });
    expect(await page.locator('.rank').count()).toBe(4);
    expect(await page.locator('.host h3').allTextContents()).toEqual([
      '127.0.0.1 · 2 ranks',
      '127.0.0.2 · 2 ranks',
    ]);
    expect(await page.locator(`section.job[data-job="${job}"] .state`).textContent()).toBe('running');
    let first = 0;
    await eventually(async () => (first = await ops(0)) > 0, 10_000, 'rank 0 reported ops');
    await eventually(async () => (await ops(0)) > first, 10_000, 'the page updated rank 0');
    await eventually(
      async () => (await page.locator('.rank polyline').count()) === 4,
      10_000,
      'every rank has a bytes/s chart',
    );
    await page.screenshot({ path: SCREENSHOT });
    expect(consoleErrors).toEqual([]);
  });

  it('shows a stall naming the missing rank, then the rank lost', async () => {
    await waitForJson(procs[3], 'stalling', 20_000);
    const stall = page.locator('.notes li.stall').first();
    await stall.waitFor({ timeout: 15_000 });
    expect(await stall.textContent()).toMatch(/waiting for rank\(s\) 3\b/);
    await sigkill(procs[3]);
    const lost = page.locator('.rank[data-rank="3"][data-alive="false"]');
    await lost.waitFor({ timeout: 15_000 });
    expect(await lost.locator('.live').textContent()).toBe('lost');
    expect(await page.locator('.rank[data-alive="true"]').count()).toBe(3);
    // The survivors' engines lost their peer: their errors and the abort show up.
    await page.locator('.notes li.error', { hasText: 'PEER_LOST' }).first().waitFor({ timeout: 15_000 });
    expect(consoleErrors).toEqual([]);
  });

  it('refuses a visitor without the token, or with a wrong one', async () => {
    const stranger = await browser.newPage();
    try {
      for (const url of [
        `${http}/`,
        `${http}/?token=wrong`,
        `${http}/?token=${jobCredential(rdv.token, 'other')}`,
      ]) {
        const res = await stranger.goto(url);
        expect(res?.status()).toBe(401);
        expect(await stranger.content()).not.toContain(job);
      }
      const events = await fetch(`${http}/events?token=wrong`);
      expect(events.status).toBe(401);
      expect(await events.text()).not.toContain(job);
    } finally {
      await stranger.close();
    }
  });
});
