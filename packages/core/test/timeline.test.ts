// RINGWIRE_TIMELINE with real ranks: valid Chrome traces, nested phases, aligned ranks; clock sync.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { finish, killAll, startRanks, startRendezvous, type TestRendezvous } from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clockUs, measureOffset } from '../src/clock.js';
import { Timeline, Track } from '../src/timeline.js';
import { engineOps, phasesOf, readTrace, traceProblems } from './trace-check.js';

const JOB = fileURLToPath(new URL('./fixtures/timeline.mjs', import.meta.url));
/** The fixture's ops: RR_OPS all-reduces and 8 others. */
const OPS = 4 + 8;
let rdv: TestRendezvous;
const tmp = mkdtempSync(join(tmpdir(), 'ringwire-timeline-'));

beforeAll(async () => (rdv = await startRendezvous()));
afterAll(async () => {
  await rdv?.close();
  rmSync(tmp, { recursive: true, force: true });
});
afterEach(killAll);

describe('timeline', () => {
  for (const size of [2, 3]) {
    it(`${size} ranks: each writes path.<rank>.json, a valid trace with every collective and its phases`, async () => {
      const path = join(tmp, `trace${size}.json`);
      const res = await finish(startRanks(rdv, JOB, size, { env: { RINGWIRE_TIMELINE: path } }).procs);
      expect(res.codes, res.output).toEqual(Array(size).fill(0));
      const ranks = Array.from({ length: size }, (_, r) => r);
      const traces = ranks.map((r) => readTrace(join(tmp, `trace${size}.${r}.json`)));
      for (const [r, t] of traces.entries()) {
        expect(traceProblems(t, [r], OPS)).toEqual([]);
        // A 1 MiB all-reduce is a ring: waiting, then reduce-scatter, then all-gather.
        expect(phasesOf(t, r, 1)).toEqual(['waiting for peers', 'reduce-scatter', 'all-gather']);
        const op = engineOps(t, r)[0];
        expect(op.args).toMatchObject({ seq: 1, bytes: 1 << 20, dtype: 'float32', op: 'sum', algo: 'ring' });
        expect(['shm', 'tcp']).toContain(op.args!.transport);
        // The float16 wire: copies around the ring.
        expect(phasesOf(t, r, 6)).toEqual([
          'copy',
          'waiting for peers',
          'reduce-scatter',
          'all-gather',
          'copy',
        ]);
        expect(t.traceEvents.some((e) => e.ph === 'b' && e.name === 'queued')).toBe(true);
      }
      // Aligned: on rank 0's clock, every rank is inside each op at once (none ends before another starts).
      const slack = Math.max(...traces.map((t) => t.otherData.ringwire[0].clockRttUs)) / 2 + 50;
      for (let i = 0; i < OPS; i++) {
        // Op 7 is a broadcast: its root waits for no one and may finish before the others start.
        if (i === 6) continue;
        const spans = traces.map((t, r) => engineOps(t, r)[i]);
        const lastStart = Math.max(...spans.map((s) => s.ts!));
        const firstEnd = Math.min(...spans.map((s) => s.ts! + s.dur!));
        expect(lastStart, `op ${i + 1}`).toBeLessThan(firstEnd + slack);
      }
    }, 60_000);
  }

  it('a timeline path that cannot be written: one clear warning per rank, and the job runs on', async () => {
    const path = join(tmp, 'no-such-dir', 'trace.json');
    const res = await finish(startRanks(rdv, JOB, 2, { env: { RINGWIRE_TIMELINE: path } }).procs);
    expect(res.codes, res.output).toEqual([0, 0]);
    const warnings = res.output.split('\n').filter((l) => l.includes('RINGWIRE_TIMELINE'));
    expect(warnings, res.output).toHaveLength(2);
    expect(warnings[0]).toMatch(
      /^\[ringwire \d\] \d\d:\d\d:\d\d\.\d{3} warn: RINGWIRE_TIMELINE: cannot write .*no-such-dir.*ENOENT.*runs on without a timeline$/,
    );
    expect(existsSync(join(tmp, 'no-such-dir'))).toBe(false);
  }, 60_000);

  it('clock sync: the min-RTT estimate finds a skewed clock within half the round trip', async () => {
    const skew = 5_000_000; // the reference runs 5 s ahead
    const ping = async () => {
      await new Promise((r) => setTimeout(r, 1));
      const now = clockUs() + skew;
      await new Promise((r) => setTimeout(r, 1));
      return now;
    };
    const got = await measureOffset(ping, 5, 2_000);
    expect(got).toBeDefined();
    expect(Math.abs(got!.offsetUs - skew)).toBeLessThanOrEqual(got!.rttUs / 2);
    expect(await measureOffset(() => new Promise<number>(() => {}), 3, 50)).toBeUndefined();
  });

  it('the recorder keeps the newest events when full, oldest first', () => {
    const tl = new Timeline(4);
    for (let i = 0; i < 10; i++) tl.record(Track.steps, 'x', i, i + 0.5, i);
    const e = tl.export();
    expect(e.dropped).toBe(6);
    expect(Array.from({ length: 4 }, (_, i) => e.data[i * 10 + 4])).toEqual([6, 7, 8, 9]);
  });
});
