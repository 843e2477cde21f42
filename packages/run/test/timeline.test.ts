// ringrun --timeline merges the ranks' traces into one; --summary prints what each worker did.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll } from '@ringwire/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readTrace, traceProblems } from '../../core/test/trace-check.js';
import { NODE, ringrun } from './helpers.js';

const JOB = fileURLToPath(new URL('../../core/test/fixtures/timeline.mjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ringrun-timeline-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(killAll);

describe('ringrun --timeline and --summary', () => {
  it('3 ranks: one merged trace, on one clock from 0, the parts removed', async () => {
    const path = join(tmp, 'job.json');
    const p = ringrun(['-np', '3', '--timeline', path, NODE, JOB]);
    expect(await p.exited, p.stderr.join('\n')).toBe(0);
    const t = readTrace(path);
    expect(traceProblems(t, [0, 1, 2], 12)).toEqual([]);
    expect(Math.min(...t.traceEvents.filter((e) => e.ts !== undefined).map((e) => e.ts!))).toBe(0);
    expect(t.otherData.ringwire.map((m) => m.rank).sort()).toEqual([0, 1, 2]);
    expect(readdirSync(tmp).filter((f) => f.startsWith('job.'))).toEqual(['job.json']);
  }, 60_000);

  it('10 all-reduces of 1 MiB at 2 ranks: each worker sent 10 MiB, with its exit, time and busbw', async () => {
    const p = ringrun(['-np', '2', '--summary', NODE, JOB], {
      RR_OPS: '10',
      RR_BYTES: String(1 << 20),
      RR_ONLY_ALLREDUCE: '1',
    });
    expect(await p.exited, p.stderr.join('\n')).toBe(0);
    const lines = p.stderr.filter((l) => l.startsWith('ringrun: summary: '));
    expect(lines, p.stderr.join('\n')).toHaveLength(2);
    for (const [r, line] of lines.entries())
      expect(line).toMatch(
        new RegExp(
          `^ringrun: summary: rank ${r} \\(localhost\\): exit 0, \\d+\\.\\d\\d s, sent 10485760 B \\(10\\.0 MiB\\), mean busbw \\d+\\.\\d{3} GB/s over 10 ops$`,
        ),
      );
  }, 60_000);

  it('a timeline path that cannot be written: the ranks warn, the job completes, ringrun says so', async () => {
    const path = join(tmp, 'no-such-dir', 'job.json');
    const p = ringrun(['-np', '2', '--timeline', path, NODE, JOB]);
    expect(await p.exited, p.stderr.join('\n')).toBe(0);
    expect(p.stderr.filter((l) => /warn: RINGWIRE_TIMELINE: cannot write/.test(l))).toHaveLength(2);
    expect(p.stderr.some((l) => l.startsWith('ringrun: timeline: cannot write'))).toBe(true);
    expect(existsSync(join(tmp, 'no-such-dir'))).toBe(false);
  }, 60_000);
});
