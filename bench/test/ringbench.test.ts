import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { busbwFactor, parseSize, sweepSizes } from '../src/metrics.js';
import { killAll, spawnNode } from '../../test/helpers/procs.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ringbench-test-'));
afterEach(() => killAll());

async function ringbench(args: string[], env: Record<string, string> = {}) {
  const p = spawnNode(CLI, args, env);
  const code = await p.exited;
  return { code, out: p.lines, err: p.stderr.join('\n') };
}

/** The data rows of the printed table, split into the nccl-tests columns. */
function tableRows(out: string[]) {
  return out.filter((l) => /^\s+\d/.test(l)).map((l) => {
    const [size, count, type, redop, time, algbw, busbw, wrong, p99] = l.trim().split(/\s+/);
    return { size: Number(size), count: Number(count), type, redop, time: Number(time), algbw: Number(algbw), busbw: Number(busbw), wrong: Number(wrong), p99: Number(p99) };
  });
}

describe('busbw and sizes', () => {
  it('uses the nccl-tests factors exactly', () => {
    expect(busbwFactor('allreduce', 4)).toBe(1.5);
    expect(busbwFactor('allreduce', 2)).toBe(1);
    expect(busbwFactor('allgather', 4)).toBe(0.75);
    expect(busbwFactor('reducescatter', 8)).toBe(0.875);
    expect(busbwFactor('broadcast', 8)).toBe(1);
  });
  it('parses K/M/G as powers of 1024 and steps by the factor', () => {
    expect([parseSize('4K'), parseSize('64M'), parseSize('1G'), parseSize('100')]).toEqual([4096, 64 * 2 ** 20, 2 ** 30, 100]);
    expect(() => parseSize('4X')).toThrow(/bad size "4X"/);
    expect(sweepSizes(4096, 65536, 4, 'allreduce', 'float32', 2)).toEqual([4096, 16384, 65536]);
    // All-gather sizes are whole elements for every rank.
    expect(sweepSizes(1000, 1000, 2, 'allgather', 'float64', 3)).toEqual([984]);
  });
});

describe('real sweeps at 2 ranks', () => {
  for (const c of ['allreduce', 'broadcast', 'allgather', 'reducescatter']) {
    it(`${c}: the table and the JSON agree, busbw = algbw x factor, nothing wrong`, async () => {
      const json = join(dir, `${c}.json`);
      const r = await ringbench([c, '-np', '2', '-b', '4K', '-e', '1M', '-f', '16', '-n', '5', '-w', '1', '--json', json]);
      expect(r.code, r.err).toBe(0);
      const rows = tableRows(r.out);
      expect(rows.map((x) => x.size)).toEqual([4096, 65536, 1048576]);
      expect(r.out.some((l) => /^# Avg bus bandwidth\s+: \d+\.\d{3}$/.test(l))).toBe(true);
      const j = JSON.parse(readFileSync(json, 'utf8'));
      expect(j).toMatchObject({ collective: c, np: 2, dtype: 'float32', op: 'sum', algo: 'auto' });
      for (const [i, row] of j.rows.entries()) {
        expect(row.busbw_GBps / row.algbw_GBps).toBeCloseTo(busbwFactor(c as 'allreduce', 2), 12);
        expect(row.algbw_GBps).toBeCloseTo(row.bytes / row.time_us / 1e3, 12);
        expect(row.wrong).toBe(0);
        expect(row.p99_us).toBeGreaterThanOrEqual(row.time_us);
        expect(rows[i].count).toBe(row.count);
        expect(rows[i].wrong).toBe(0);
      }
    }, 60_000);
  }

  it('float16 mean and 4 ranks: exact results, busbw factor 1.5', async () => {
    const json = join(dir, 'f16.json');
    const r = await ringbench(['allreduce', '-np', '4', '-b', '1K', '-e', '64K', '-f', '8', '-n', '3', '-w', '1', '-d', 'float16', '-o', 'mean', '--json', json]);
    expect(r.code, r.err).toBe(0);
    for (const row of JSON.parse(readFileSync(json, 'utf8')).rows) {
      expect(row.wrong).toBe(0);
      expect(row.busbw_GBps / row.algbw_GBps).toBeCloseTo(1.5, 12);
    }
  }, 60_000);

  it('#wrong counts an injected corruption, and the run fails', async () => {
    const r = await ringbench(['allreduce', '-np', '2', '-b', '4K', '-e', '64K', '-f', '16', '-n', '2', '-w', '0'], { RINGBENCH_CORRUPT_RANK: '1' });
    expect(r.code).toBe(1);
    const rows = tableRows(r.out);
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.wrong).toBeGreaterThan(0);
    expect(r.out.some((l) => /Out of bounds values : \d+ FAILED/.test(l))).toBe(true);
  }, 60_000);

  it('plots one or more JSON files as SVG', async () => {
    const svg = join(dir, 'plot.svg');
    const r = await ringbench(['plot', join(dir, 'allreduce.json'), join(dir, 'allgather.json'), '-o', svg]);
    expect(r.code, r.err).toBe(0);
    const text = readFileSync(svg, 'utf8');
    expect(text).toMatch(/^<svg/);
    expect(text.match(/<polyline/g)).toHaveLength(2);
    expect(text).toMatch(/allreduce np=2/);
  });
});

describe('bad flags', () => {
  const cases: [string[], RegExp][] = [
    [['allscatter', '-np', '2'], /unknown command 'allscatter'/],
    [['allreduce', '-np', '2', '-b', '1M', '-e', '4K'], /-b 1048576 is above -e 4096/],
    [['allreduce', '-np', '2', '-b', '4Q'], /bad size "4Q"/],
    [['allreduce', '-np', '0'], /must be an integer >= 1/],
    [['allreduce', '-np', '2', '-d', 'float8'], /Allowed choices are float32/],
    [['allreduce', '-np', '2', '-d', 'int32', '-o', 'mean'], /-o mean needs a float type, not int32/],
    [['allreduce', '-np', '2', '--plot', 'x.png'], /--plot writes SVG/],
    [['allreduce'], /required option '--np <n>' not specified/],
  ];
  for (const [args, re] of cases) {
    it(`${args.join(' ')}`, async () => {
      const r = await ringbench(args);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(re);
    });
  }
});
