import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll, spawnNode } from '@ringwire/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  countWrong,
  encode,
  fill,
  fromBf16,
  fromF16,
  inputValue,
  reducedValue,
  toBf16,
  toF16,
} from '../src/pattern.js';
import { busFactor, type Collective, parseSize, parseTable, summarize, sweepSizes } from '../src/table.js';

// The built CLI (npm test builds first); RINGBENCH_CLI points elsewhere when developing.
const CLI = process.env.RINGBENCH_CLI ?? fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ringbench-test-'));
afterEach(() => killAll());

/** Runs ringbench; a per-run marker in the environment lets us find any process it left behind. */
async function ringbench(args: string[], env: Record<string, string> = {}) {
  const mark = `rb-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const p = spawnNode(CLI, args, { RINGBENCH_TEST_MARK: mark, ...env });
  const code = await p.exited;
  return { code, out: p.lines.join('\n'), err: p.stderr.join('\n'), strays: await strays(mark) };
}

/** Processes still alive whose environment carries the marker (the ranks, peers, watchdog). */
async function strays(mark: string): Promise<number[]> {
  await new Promise((r) => setTimeout(r, 300));
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').includes(`RINGBENCH_TEST_MARK=${mark}`))
        found.push(Number(pid));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

const num = (row: Record<string, string>, col: string) => Number(row[col]);

describe('formulas', () => {
  it('busbw factors are the nccl-tests ones, exactly', () => {
    expect(busFactor('allreduce', 2)).toBe(1);
    expect(busFactor('allreduce', 4)).toBe(1.5);
    expect(busFactor('allreduce', 8)).toBe(1.75);
    expect(busFactor('allgather', 4)).toBe(0.75);
    expect(busFactor('reducescatter', 2)).toBe(0.5);
    expect(busFactor('reducescatter', 8)).toBe(0.875);
    expect(busFactor('broadcast', 2)).toBe(1);
    expect(busFactor('broadcast', 8)).toBe(1);
  });

  it('sizes take K/M/G as powers of 1024 and step by the factor, in whole elements per rank', () => {
    expect(['4K', '64M', '1G', '100', '16KiB', '2m'].map(parseSize)).toEqual([
      4096,
      64 * 2 ** 20,
      2 ** 30,
      100,
      16384,
      2 * 2 ** 20,
    ]);
    for (const bad of ['4X', '', '-4K', '0', 'K']) expect(() => parseSize(bad)).toThrow(/bad size/);
    expect(sweepSizes(4096, 65536, 4, 4)).toEqual([4096, 16384, 65536]);
    expect(sweepSizes(1000, 1000, 2, 24)).toEqual([984]);
    expect(sweepSizes(1, 1, 2, 8)).toEqual([8]);
    expect(() => sweepSizes(2, 1, 2, 1)).toThrow(/larger than/);
  });

  it('statistics: median and p99 of the per-iteration times; algbw in 1e9 bytes/s', () => {
    const times = Array.from({ length: 100 }, (_, i) => i + 1);
    const r = summarize({ bytes: 1e6, count: 250_000, times_us: times.reverse(), wrong: 0 }, 'allreduce', 4);
    expect(r.time_us).toBe(50.5);
    expect(r.p99_us).toBe(99);
    expect(r.algbw_GBps).toBeCloseTo(1e6 / 50.5e-6 / 1e9, 12);
    expect(r.busbw_GBps / r.algbw_GBps).toBeCloseTo(1.5, 12);
  });

  it('test data are exact in every dtype: float16 / bfloat16 bits, reductions, checks', () => {
    expect([toF16(1), toF16(2048), toF16(-2), toF16(0.5), toF16(65504)]).toEqual([
      0x3c00, 0x6800, 0xc000, 0x3800, 0x7bff,
    ]);
    expect([toBf16(1), toBf16(-2), toBf16(256)]).toEqual([0x3f80, 0xc000, 0x4380]);
    for (let v = -600; v <= 600; v++) expect(fromF16(toF16(v))).toBe(v);
    for (let v = -256; v <= 256; v++) expect(fromBf16(toBf16(v))).toBe(v);
    expect(reducedValue('sum', 4, 0)).toBe(1 + 2 + 3 + 4);
    expect(reducedValue('prod', 8, 0)).toBe(4); // ranks 0 and 7 hold a 2
    expect(reducedValue('mean', 5, 3)).toBe(4);
    const means = Array.from({ length: 5 }, (_, r) => inputValue('mean', r, 5, 3));
    expect(means.reduce((a, b) => a + b) / 5).toBe(4);
    const a = new Uint16Array(1000);
    fill(a, 'bfloat16', 'sum', 2, 4, 10);
    expect(Array.from(a.subarray(0, 8), fromBf16)).toEqual([6, 7, 1, 2, 3, 4, 5, 6]);
    expect(countWrong(a, 'bfloat16', 'sum', 10, (i) => inputValue('sum', 2, 4, i))).toBe(0);
    a[999] = encode('bfloat16', 99);
    expect(countWrong(a, 'bfloat16', 'sum', 10, (i) => inputValue('sum', 2, 4, i))).toBe(1);
  });
});

describe('real sweeps (2 ranks, small sizes)', () => {
  const cases: [Collective, number][] = [
    ['allreduce', 1],
    ['broadcast', 1],
    ['allgather', 0.5],
    ['reducescatter', 0.5],
  ];
  for (const [c, factor] of cases) {
    it(`${c}: the table and the JSON parse and agree; busbw/algbw = ${factor}; nothing wrong`, async () => {
      const json = join(dir, `${c}.json`);
      const r = await ringbench([
        c,
        '-np',
        '2',
        '-b',
        '64K',
        '-e',
        '4M',
        '-f',
        '8',
        '-n',
        '4',
        '-w',
        '1',
        '--json',
        json,
      ]);
      expect(r.code, r.err).toBe(0);
      expect(r.strays).toEqual([]);
      const lines = r.out.trim().split('\n');
      expect(lines.at(-1)).toMatch(/^# Avg bus bandwidth\s+: \d+\.\d+$/);
      expect(r.out).toMatch(
        /size\s+count\s+type\s+redop\s+time\(us\)\s+algbw\(GB\/s\)\s+busbw\(GB\/s\)\s+#wrong\s+p99\(us\)/,
      );
      const table = parseTable(r.out);
      expect(table.rows.map((x) => num(x, 'size'))).toEqual([65536, 524288, 4194304]);
      const j = JSON.parse(readFileSync(json, 'utf8'));
      expect(j).toMatchObject({
        collective: c,
        np: 2,
        dtype: 'float32',
        op: c === 'allreduce' || c === 'reducescatter' ? 'sum' : 'none',
        algo: 'auto',
      });
      expect(table.avgBusbw).toBeCloseTo(j.avg_busbw_GBps, 3);
      j.rows.forEach((row: Record<string, number>, i: number) => {
        const printed = table.rows[i];
        expect(row.busbw_GBps / row.algbw_GBps).toBeCloseTo(factor, 12);
        expect(row.algbw_GBps).toBeCloseTo(row.bytes / row.time_us / 1e3, 12);
        expect(row.p99_us).toBeGreaterThanOrEqual(row.time_us);
        expect(row.wrong).toBe(0);
        expect(num(printed, 'count')).toBe(row.count);
        expect(num(printed, '#wrong')).toBe(0);
        expect(printed.type).toBe('float32');
        expect(num(printed, 'time(us)')).toBeCloseTo(row.time_us, 0);
        // The printed columns carry the factor too (to their rounding).
        expect(Math.abs(num(printed, 'busbw(GB/s)') / num(printed, 'algbw(GB/s)') - factor)).toBeLessThan(
          0.03,
        );
        expect(row.evloop_max_us).toBeGreaterThanOrEqual(0);
        expect(row.rss_peak_MiB_ranks).toHaveLength(2);
        expect(row.rss_peak_MiB).toBeGreaterThan(10);
      });
      // size is the whole buffer (all ranks' shares for all-gather and reduce-scatter), as in nccl-tests.
      expect(j.rows[0].count).toBe(16384);
    });
  }

  it('4 ranks, float16 mean, ordinary (staged) arrays: exact, busbw/algbw = 1.5 in the table and the JSON', async () => {
    const json = join(dir, 'f16.json');
    const r = await ringbench([
      'allreduce',
      '-np',
      '4',
      '-b',
      '256K',
      '-e',
      '1M',
      '-f',
      '4',
      '-n',
      '3',
      '-w',
      '1',
      '-d',
      'float16',
      '-o',
      'mean',
      '--staged',
      '--json',
      json,
    ]);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(readFileSync(json, 'utf8'));
    expect(j.staged).toBe(true);
    for (const row of j.rows) {
      expect(row.wrong).toBe(0);
      expect(row.busbw_GBps / row.algbw_GBps).toBeCloseTo(1.5, 12);
    }
    for (const row of parseTable(r.out).rows)
      expect(Math.abs(num(row, 'busbw(GB/s)') / num(row, 'algbw(GB/s)') - 1.5)).toBeLessThan(0.05);
    expect(r.out).toMatch(/ordinary ArrayBuffers/);
  });

  it('#wrong counts an injected corruption in that row only, and the run fails', async () => {
    const r = await ringbench(
      ['allreduce', '-np', '2', '-b', '4K', '-e', '256K', '-f', '8', '-n', '2', '-w', '0'],
      { RINGBENCH_CORRUPT_RANK: '1', RINGBENCH_CORRUPT_BYTES: '32K' },
    );
    expect(r.code).toBe(1);
    expect(r.strays).toEqual([]);
    const rows = parseTable(r.out).rows;
    expect(rows.map((x) => [num(x, 'size'), num(x, '#wrong')])).toEqual([
      [4096, 0],
      [32768, 1],
      [262144, 0],
    ]);
    expect(r.out).toMatch(/Out of bounds values : 1 FAILED/);
  });

  it('plots several JSON files together (SVG, and PNG when a font is there)', async () => {
    const svg = join(dir, 'plot.svg');
    const r = await ringbench(['plot', join(dir, 'allreduce.json'), join(dir, 'allgather.json'), '-o', svg]);
    expect(r.code, r.err).toBe(0);
    const text = readFileSync(svg, 'utf8');
    expect(text).toMatch(/^<svg/);
    expect(text).toMatch(/>allreduce sum</);
    expect(text).toMatch(/>allgather</);
    expect(text).toMatch(/message size \(bytes, log scale\)/);
    const png = join(dir, 'plot.png');
    const p = await ringbench(['plot', join(dir, 'allreduce.json'), '-o', png]);
    if (p.code === 0) expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    else expect(p.err).toMatch(/needs a TrueType font/);
  });

  it('compare reports missing peers with their install command and still measures ringwire', async () => {
    const json = join(dir, 'cmp.json');
    // A machine with Node but neither python3-torch nor Open MPI.
    const r = await ringbench(
      ['compare', '-np', '2', '-b', '4K', '-e', '64K', '-f', '16', '-n', '2', '-w', '1', '--json', json],
      {
        RINGBENCH_PYTHON: '/nonexistent/python3',
        RINGBENCH_MPIRUN: '/nonexistent/mpirun',
        RINGBENCH_MPICC: '/nonexistent/mpicc',
      },
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/# gloo: not measured: .*Install it with: apt-get install -y python3-torch/);
    expect(r.out).toMatch(
      /# mpi-tcp: not measured: .*Install it with: apt-get install -y openmpi-bin libopenmpi-dev/,
    );
    expect(r.out).toMatch(/# ringwire vs peers/);
    const j = JSON.parse(readFileSync(json, 'utf8'));
    expect(j.results.map((x: { impl: string }) => x.impl)).toEqual(['ringwire']);
    expect(j.results[0].rows).toHaveLength(2);
    expect(j.missing.map((m: { peer: string }) => m.peer)).toEqual(['gloo', 'mpi-tcp', 'mpi-sm']);
  });

  it.skipIf(!existsSync('/usr/bin/mpirun'))(
    'compare with Open MPI over shared memory: same sizes, ratios printed',
    async () => {
      const r = await ringbench([
        'compare',
        'allgather',
        '-np',
        '2',
        '-b',
        '4K',
        '-e',
        '64K',
        '-f',
        '16',
        '-n',
        '3',
        '-w',
        '1',
        '--peers',
        'mpi-sm',
      ]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/# ringbench allgather: mpi-sm, 2 ranks/);
      expect(r.out).toMatch(/\s+size\s+ringwire\s+mpi-sm\s+rw\/mpi-sm/);
      const ratioRows = r.out
        .split('# ringwire vs peers')[1]
        .split('\n')
        .filter((l) => /^\s+\d/.test(l));
      expect(ratioRows.map((l) => Number(l.trim().split(/\s+/)[0]))).toEqual([4096, 65536]);
      for (const l of ratioRows) expect(Number(l.trim().split(/\s+/)[3])).toBeGreaterThan(0);
    },
  );
});

describe('bad flags: a clear error, a non-zero exit, no processes left', () => {
  const cases: [string[], RegExp][] = [
    [
      ['allscatter', '-np', '2'],
      /unknown collective "allscatter": choose one of allreduce, broadcast, allgather, reducescatter/,
    ],
    [['allreduce', '-np', '2', '-b', '1M', '-e', '4K'], /-b 1048576 is larger than -e 4096/],
    [['allreduce', '-np', '2', '-b', '4Q'], /bad size "4Q"/],
    [['allreduce', '-np', '0'], /--np <n>' argument '0' is invalid\. must be an integer >= 1/],
    [
      ['allreduce', '-np', '2', '-d', 'float8'],
      /argument 'float8' is invalid\. Allowed choices are float32, float64, int32, uint8, float16, bfloat16/,
    ],
    [
      ['allreduce', '-np', '2', '-o', 'avg'],
      /argument 'avg' is invalid\. Allowed choices are sum, mean, min, max, prod/,
    ],
    [['allreduce', '-np', '2', '-d', 'int32', '-o', 'mean'], /-o mean needs a float type, not int32/],
    [['allreduce', '-np', '2', '-f', '1'], /must be a number > 1/],
    [['broadcast', '-np', '2', '-r', '2'], /the root must be a rank below -np 2/],
    [['allreduce', '-np', '2', '--plot', 'x.jpg'], /name the file \.svg or \.png/],
    [['compare', '-np', '2', '--peers', 'nccl'], /unknown peer "nccl"/],
    [['allreduce'], /required option '--np <n>' not specified/],
  ];
  for (const [args, re] of cases) {
    it(args.join(' '), async () => {
      const r = await ringbench(args);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(re);
      expect(r.out).not.toMatch(/^\s+\d/m);
      expect(r.strays).toEqual([]);
    });
  }
});
