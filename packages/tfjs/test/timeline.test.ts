// With RINGWIRE_TIMELINE, each DistributedOptimizer step is on the steps track with its phases.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { finish, killAll, startRanks, startRendezvous, type TestRendezvous } from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { readTrace, traceProblems } from '../../core/test/trace-check.js';

const STEPS = fileURLToPath(new URL('./fixtures/timeline-steps.mjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ringwire-tfjs-timeline-'));
let rdv: TestRendezvous;
beforeAll(async () => (rdv = await startRendezvous()));
afterAll(async () => {
  await rdv?.close();
  rmSync(tmp, { recursive: true, force: true });
});
afterEach(killAll);

it('2 ranks: every step with compute, fuse, download, all-reduce, upload, apply, nested in order', async () => {
  const path = join(tmp, 'steps.json');
  const res = await finish(startRanks(rdv, STEPS, 2, { env: { RINGWIRE_TIMELINE: path } }).procs);
  expect(res.codes, res.output).toEqual([0, 0]);
  for (const r of [0, 1]) {
    const t = readTrace(join(tmp, `steps.${r}.json`));
    // The layout check's all-gather, then one fused all-reduce per step.
    expect(traceProblems(t, [r], 4)).toEqual([]);
    for (let step = 0; step < 3; step++) {
      const phases = t.traceEvents
        .filter((e) => e.ph === 'X' && e.pid === r && e.tid === 3 && e.args?.step === step)
        .sort((a, b) => a.ts! - b.ts! || b.dur! - a.dur!)
        .map((e) => e.name);
      expect(phases).toEqual(['step', 'compute', 'fuse', 'download', 'all-reduce', 'upload', 'apply']);
    }
  }
}, 90_000);
