import { fileURLToPath } from 'node:url';
import { jobCredential, RendezvousClient } from '@ringwire/rendezvous';
import {
  eventually,
  killAll,
  startRanks,
  startRendezvous,
  type TestRendezvous,
  waitForJson,
} from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

// /metrics: the ranks of a real job report their counters to the rendezvous, which serves them
// in the Prometheus text format to holders of the job's credential (bearer), and to no one else.

const FIXTURE = fileURLToPath(new URL('./fixtures/observed.mjs', import.meta.url));
const MiB = 1024 * 1024;
let rdv: TestRendezvous;
let http: string;

beforeAll(async () => {
  rdv = await startRendezvous();
  http = rdv.url.replace('ws:', 'http:');
});
afterEach(killAll);
afterAll(() => rdv.close());

async function scrape(credential?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${http}/metrics`, {
    headers: credential ? { authorization: `Bearer ${credential}` } : {},
  });
  return { status: res.status, text: await res.text() };
}

/** The value of one sample line, e.g. value(text, 'ringwire_operations_total', {job, rank: '0'}). */
function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('/metrics', () => {
  it('after 10 all-reduces of 1 MiB shows 10 operations and 10 MiB per rank, with histograms, steps and generation', async () => {
    const { procs, job } = startRanks(rdv, FIXTURE, 2, {
      args: ['ten'],
      env: { RINGWIRE_METRICS_INTERVAL_MS: '200' },
    });
    await Promise.all(procs.map((p) => waitForJson(p, 'done', 30_000)));
    const credential = jobCredential(rdv.token, job);
    let text = '';
    await eventually(
      async () => {
        text = (await scrape(credential)).text;
        return [0, 1].every(
          (rank) => value(text, 'ringwire_step_duration_seconds_count', { job, rank: `${rank}` }) === 1,
        );
      },
      10_000,
      'both ranks reported their step',
    );
    expect(text).toContain('# TYPE ringwire_operations_total counter');
    for (const rank of ['0', '1']) {
      const at = { job, rank, collective: 'allreduce' };
      expect(value(text, 'ringwire_operations_total', at)).toBe(10);
      expect(value(text, 'ringwire_bytes_total', at)).toBe(10 * MiB);
      expect(value(text, 'ringwire_operation_duration_seconds_count', at)).toBe(10);
      expect(value(text, 'ringwire_bus_bandwidth_bytes_per_second_count', at)).toBe(10);
      expect(value(text, 'ringwire_step_duration_seconds_sum', { job, rank })).toBeCloseTo(0.0125);
      expect(value(text, 'ringwire_stall_warnings_total', { job, rank }) ?? 0).toBe(0);
      expect(value(text, 'ringwire_rank_up', { job, rank })).toBe(1);
      expect(value(text, 'ringwire_operations_total', { ...at, collective: 'broadcast' })).toBeUndefined();
    }
    expect(value(text, 'ringwire_generation', { job })).toBe(1);
  });

  it("shows a job only to its credential's holder (and the server's secret); ignores a malformed report", async () => {
    // Two jobs of one member each; real clients sending real reports.
    const jobs = [`metrics-a-${process.pid}`, `metrics-b-${process.pid}`];
    const clients = await Promise.all(
      jobs.map((job) =>
        RendezvousClient.connect({ url: rdv.url, job, token: jobCredential(rdv.token, job) }),
      ),
    );
    try {
      await Promise.all(clients.map((c, i) => c.join({ size: 1, host: '127.0.0.1', port: 40_000 + i })));
      const report = (ops: number) => ({
        generation: 1,
        ops: { broadcast: ops },
        bytes: { broadcast: ops * 8 },
        samples: [],
        steps: [],
        stalls: 0,
        lostPeers: 0,
        stall: null,
        running: null,
        error: null,
      });
      clients[0].sendMetrics(report(3));
      clients[1].sendMetrics(report(5));
      // Malformed: an unknown collective name. Dropped; the member stays connected.
      clients[1].sendMetrics({ ...report(99), ops: { nonsense: 1 } } as never);
      const a = jobCredential(rdv.token, jobs[0]);
      const b = jobCredential(rdv.token, jobs[1]);
      let seen = '';
      await eventually(
        async () =>
          value((seen = (await scrape(rdv.token)).text), 'ringwire_operations_total', { job: jobs[1] }) === 5,
        5_000,
        'the secret sees both jobs',
      );
      expect(value(seen, 'ringwire_operations_total', { job: jobs[0] })).toBe(3);
      const onlyA = await scrape(a);
      expect(onlyA.status).toBe(200);
      expect(value(onlyA.text, 'ringwire_operations_total', { job: jobs[0] })).toBe(3);
      expect(onlyA.text).not.toContain(jobs[1]);
      const onlyB = await scrape(b);
      expect(value(onlyB.text, 'ringwire_operations_total', { job: jobs[1] })).toBe(5);
      expect(onlyB.text).not.toContain(jobs[0]);
      for (const bad of [
        undefined,
        'wrong',
        jobCredential(rdv.token, 'no-such-job'),
        jobCredential('other', jobs[0]),
      ]) {
        const res = await scrape(bad);
        expect(res.status).toBe(401);
        expect(res.text).not.toContain('ringwire_');
      }
      // The malformed report closed nothing: the member still answers.
      await clients[1].set('k', 1);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});
