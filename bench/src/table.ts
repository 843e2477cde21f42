import { DTYPE_NAMES, DTYPES, type DType, UsageError } from '@ringwire/common';
/** Sizes, bandwidth formulas, statistics and the nccl-tests-style table. No I/O here. */

export const COLLECTIVES = ['allreduce', 'broadcast', 'allgather', 'reducescatter'] as const;
export type Collective = (typeof COLLECTIVES)[number];

/** Bytes per element of each dtype ringbench sweeps (the table is @ringwire/common's DTYPES). */
export const DTYPE_BYTES = Object.fromEntries(DTYPE_NAMES.map((d) => [d, DTYPES[d].bytes])) as Record<
  DType,
  number
>;
export type BenchDType = DType;
export const OPS = ['sum', 'mean', 'min', 'max', 'prod'] as const;
export type BenchOp = (typeof OPS)[number];
export const FLOAT_DTYPES: readonly BenchDType[] = ['float32', 'float64', 'float16', 'bfloat16'];

export { UsageError };

/** Whether a collective reduces (has a meaningful op). */
export const reduces = (c: Collective) => c === 'allreduce' || c === 'reducescatter';

/**
 * busbw / algbw, as nccl-tests defines it: the fraction of the data each rank must send over its
 * busiest link, so that busbw is comparable with the hardware's link speed whatever n is.
 */
export function busFactor(collective: Collective, n: number): number {
  switch (collective) {
    case 'allreduce':
      return (2 * (n - 1)) / n;
    case 'allgather':
    case 'reducescatter':
      return (n - 1) / n;
    case 'broadcast':
      return 1;
  }
}

/** algbw in GB/s (1 GB = 1e9 bytes) for `bytes` moved in `us` microseconds. */
export const algbw = (bytes: number, us: number) => bytes / us / 1e3;

/** '4K' -> 4096, '1M' -> 1048576, '2G', '123', '16KiB'; powers of 1024. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(|B|K|KB|KiB|M|MB|MiB|G|GB|GiB)\s*$/i.exec(String(text));
  if (!m)
    throw new UsageError(
      `bad size ${JSON.stringify(text)}: expected a number with an optional K, M or G suffix (powers of 1024), e.g. 4K, 64M`,
    );
  const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    m[2].toLowerCase().charAt(0) as '' | 'b' | 'k' | 'm' | 'g'
  ];
  const v = Number(m[1]) * mult;
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new UsageError(`bad size ${JSON.stringify(text)}: must be a whole number of bytes > 0`);
  return v;
}

/** 4096 -> '4K', 67108864 -> '64M': the inverse of parseSize where exact. */
export function formatSize(bytes: number): string {
  for (const [s, m] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const)
    if (bytes >= m && bytes % m === 0) return `${bytes / m}${s}`;
  return String(bytes);
}

/** Human-readable: 4 KiB, 64 MiB. */
export function humanSize(bytes: number): string {
  for (const [s, m] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const)
    if (bytes >= m && bytes % m === 0) return `${bytes / m} ${s}`;
  return `${bytes} B`;
}

/**
 * The sweep's sizes: min, min*f, ... up to max, each rounded down to whole elements (and, for
 * all-gather and reduce-scatter, to a multiple of n elements, since every rank holds size/n).
 */
export function sweepSizes(min: number, max: number, factor: number, unit: number): number[] {
  if (min > max)
    throw new UsageError(`-b ${min} is larger than -e ${max}: the minimum size must not exceed the maximum`);
  if (!(factor > 1) && min < max) throw new UsageError(`-f must be a number > 1 (got ${factor})`);
  const out: number[] = [];
  for (let s = min; s <= max; s = Math.max(s + 1, Math.floor(s * factor))) {
    const b = Math.max(unit, Math.floor(s / unit) * unit);
    if (out[out.length - 1] !== b) out.push(b);
    if (min === max) break;
  }
  return out;
}

/** The median of an already sorted list. */
export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (!n) return NaN;
  return n % 2 ? sorted[n >> 1] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** What a sweep step measured, before statistics: per-iteration times (max over ranks). */
export interface RawRow {
  bytes: number;
  count: number;
  times_us: number[];
  wrong: number;
  /** Event-loop delay on each rank's main thread during the timed loop (us). */
  evloop_max_us?: number[];
  evloop_p99_us?: number[];
  /** Peak resident set (maxRSS) per rank after this size, and each rank's RSS before any buffer. */
  rss_peak_MiB?: number[];
  rss_base_MiB?: number[];
  /** The algorithm ringwire reported it ran (RINGWIRE_ALGO=auto resolved); absent for peers. */
  algo?: string;
  /** A peer that cannot run this row says why. */
  error?: string;
}

export interface Row {
  bytes: number;
  count: number;
  iters: number;
  /** Median over timed iterations of the slowest rank's time. */
  time_us: number;
  p99_us: number;
  min_us: number;
  mean_us: number;
  algbw_GBps: number;
  busbw_GBps: number;
  wrong: number;
  evloop_max_us?: number;
  evloop_p99_us?: number;
  evloop_max_us_ranks?: number[];
  rss_peak_MiB?: number;
  rss_peak_MiB_ranks?: number[];
  rss_base_MiB_ranks?: number[];
  algo?: string;
  error?: string;
}

export interface Result {
  collective: Collective;
  np: number;
  dtype: BenchDType;
  op: BenchOp | 'none';
  algo: string;
  /** 'ringwire' or a peer's name. */
  impl: string;
  staged?: boolean;
  root?: number;
  iters: number;
  warmup: number;
  rows: Row[];
  avg_busbw_GBps: number;
  /** ringwire's reduction kernels: 'native' or 'js'. */
  kernels?: string;
  command?: string;
  host?: { cpus: number; node: string; date: string };
}

/** One raw row to its nccl-tests columns (time, algbw, busbw, p99, memory). */
export function summarize(raw: RawRow, collective: Collective, np: number): Row {
  const t = [...raw.times_us].sort((a, b) => a - b);
  const time = median(t);
  const alg = algbw(raw.bytes, time);
  const mx = (a?: number[]) => (a?.length ? Math.max(...a) : undefined);
  return {
    bytes: raw.bytes,
    count: raw.count,
    iters: t.length,
    time_us: time,
    p99_us: percentile(t, 99),
    min_us: t[0],
    mean_us: t.reduce((s, x) => s + x, 0) / t.length,
    algbw_GBps: alg,
    busbw_GBps: alg * busFactor(collective, np),
    wrong: raw.wrong,
    ...(raw.evloop_max_us && {
      evloop_max_us: mx(raw.evloop_max_us),
      evloop_p99_us: mx(raw.evloop_p99_us),
      evloop_max_us_ranks: raw.evloop_max_us,
    }),
    ...(raw.rss_peak_MiB && {
      rss_peak_MiB: mx(raw.rss_peak_MiB),
      rss_peak_MiB_ranks: raw.rss_peak_MiB,
      rss_base_MiB_ranks: raw.rss_base_MiB,
    }),
    ...(raw.algo && { algo: raw.algo }),
    ...(raw.error && { error: raw.error }),
  };
}

/** nccl-tests' "Avg bus bandwidth": the mean busbw over the sweep's rows. */
export function avgBusbw(rows: readonly Row[]): number {
  const ok = rows.filter((r) => !r.error && Number.isFinite(r.busbw_GBps));
  return ok.length ? ok.reduce((s, r) => s + r.busbw_GBps, 0) / ok.length : 0;
}

/** Fixed decimals, more of them for small values so that they do not print as 0.000. */
export const num = (x: number | undefined, digits = 3) =>
  x === undefined || !Number.isFinite(x)
    ? 'n/a'
    : x.toFixed(x !== 0 && Math.abs(x) < 0.1 ? digits + 2 : digits);
const timeCell = (us: number) => (us >= 1e5 ? us.toFixed(0) : us >= 100 ? us.toFixed(1) : us.toFixed(2));

export const COLUMNS = [
  'size',
  'count',
  'type',
  'redop',
  'time(us)',
  'algbw(GB/s)',
  'busbw(GB/s)',
  '#wrong',
  'p99(us)',
  'evl_max(ms)',
  'evl_p99(ms)',
  'rss(MiB)',
  'algo',
];
const WIDTHS = [12, 12, 9, 6, 11, 11, 11, 7, 11, 11, 11, 9, 13];

/** The `#` comment lines and column titles that open a sweep's table. */
export function tableHeader(
  r: Pick<
    Result,
    'collective' | 'np' | 'dtype' | 'op' | 'algo' | 'impl' | 'iters' | 'warmup' | 'staged' | 'root'
  >,
): string {
  const buf =
    r.impl === 'ringwire'
      ? r.staged
        ? 'ordinary ArrayBuffers (staged copy)'
        : 'SharedArrayBuffer (zero-copy)'
      : r.impl === 'gloo'
        ? 'torch tensors'
        : 'malloc (MPI_IN_PLACE for all-reduce)';
  return [
    `# ringbench ${r.collective}: ${r.impl}, ${r.np} ranks, ${r.dtype}, op ${r.op}, algo ${r.algo}${r.collective === 'broadcast' ? `, root ${r.root ?? 0}` : ''}, buffers: ${buf}`,
    `# warm-up ${r.warmup} and ${r.iters} timed iterations per size, back to back; an iteration's time is the slowest rank's; time = median, p99 over iterations`,
    `# busbw = algbw x ${busFormula(r.collective)}; GB/s = 1e9 bytes/s; #wrong = wrong elements over all ranks in separate untimed runs`,
    `# evl = event-loop delay of each rank's main thread during the timed loop (max over ranks); rss = peak resident memory up to the end of the timed loop (maxRSS), max over ranks; algo = what ringwire ran (auto resolved)`,
    '#',
    `#${COLUMNS.map((c, i) => c.padStart(WIDTHS[i] - (i === 0 ? 1 : 0))).join(' ')}`,
  ].join('\n');
}

/** The busbw factor of a collective, as nccl-tests writes it. */
export function busFormula(c: Collective): string {
  return c === 'allreduce' ? '2(n-1)/n' : c === 'broadcast' ? '1' : '(n-1)/n';
}

/** One row of the table, padded to the column widths. */
export function tableRow(row: Row, dtype: string, op: string): string {
  if (row.error)
    return `${String(row.bytes).padStart(12)} ${String(row.count).padStart(12)} ${dtype.padStart(9)} ${op.padStart(6)}  error: ${row.error}`;
  const ms = (us?: number) => (us === undefined ? 'n/a' : (us / 1000).toFixed(2));
  const cells = [
    String(row.bytes),
    String(row.count),
    dtype,
    op,
    timeCell(row.time_us),
    num(row.algbw_GBps, 3),
    num(row.busbw_GBps, 3),
    String(row.wrong),
    timeCell(row.p99_us),
    ms(row.evloop_max_us),
    ms(row.evloop_p99_us),
    row.rss_peak_MiB === undefined ? 'n/a' : row.rss_peak_MiB.toFixed(0),
    row.algo ?? '-',
  ];
  return cells.map((c, i) => c.padStart(WIDTHS[i])).join(' ');
}

/** The closing lines of a table: average busbw and the run's settings. */
export function tableFooter(res: Result): string {
  const lines: string[] = [];
  const last = res.rows.filter((r) => !r.error).at(-1);
  if (last?.rss_peak_MiB_ranks) {
    lines.push(
      `# Peak RSS per rank (MiB): ${last.rss_peak_MiB_ranks.map((v, i) => `${i}: ${v.toFixed(0)} (before buffers ${last.rss_base_MiB_ranks?.[i]?.toFixed(0) ?? '?'})`).join(', ')}`,
    );
  }
  const evl = res.rows.map((r) => r.evloop_max_us).filter((x): x is number => x !== undefined);
  if (evl.length)
    lines.push(
      `# Event-loop delay during timed loops: max ${(Math.max(...evl) / 1000).toFixed(2)} ms over all sizes and ranks`,
    );
  const wrong = res.rows.reduce((s, r) => s + (r.wrong || 0), 0);
  lines.push(`# Out of bounds values : ${wrong} ${wrong ? 'FAILED' : 'OK'}`);
  lines.push(`# Avg bus bandwidth    : ${avgBusbw(res.rows).toFixed(4)}`);
  return lines.join('\n');
}

/** Parses a printed table back into rows (used by tests and by anyone scripting the output). */
export function parseTable(text: string): { rows: Record<string, string>[]; avgBusbw?: number } {
  const rows: Record<string, string>[] = [];
  let avg: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^# Avg bus bandwidth\s*:\s*([\d.]+)/.exec(line);
    if (m) avg = Number(m[1]);
    if (line.startsWith('#') || !line.trim()) continue;
    const cells = line.trim().split(/\s+/);
    if (cells.length !== COLUMNS.length) continue;
    rows.push(Object.fromEntries(COLUMNS.map((c, i) => [c, cells[i]])));
  }
  return { rows, avgBusbw: avg };
}
