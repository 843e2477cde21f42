import { DTYPES, type DType } from 'ringwire';

export const COLLECTIVES = ['allreduce', 'broadcast', 'allgather', 'reducescatter'] as const;
export type Collective = (typeof COLLECTIVES)[number];

/** Bus bandwidth factor, as nccl-tests defines it: what each rank's link really carries. */
export function busbwFactor(collective: Collective, n: number): number {
  if (collective === 'allreduce') return (2 * (n - 1)) / n;
  if (collective === 'broadcast') return 1;
  return (n - 1) / n;
}

/** '4K', '64M', '1G' (powers of 1024) or plain bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)B?$/i.exec(String(s).trim());
  if (!m) throw new Error(`bad size ${JSON.stringify(s)}: use bytes or a K/M/G suffix (powers of 1024)`);
  return Number(m[1]) * 1024 ** ['', 'K', 'M', 'G'].indexOf(m[2].toUpperCase());
}

/** Sizes from min to max, multiplying by factor, each a whole number of elements for every rank. */
export function sweepSizes(min: number, max: number, factor: number, collective: Collective, dtype: DType, n: number): number[] {
  if (!(min > 0) || !(max >= min)) throw new Error(`-b ${min} must be > 0 and not above -e ${max}`);
  if (!(factor > 1) && min !== max) throw new Error(`-f must be above 1, got ${factor}`);
  const unit = DTYPES[dtype].bytes * (collective === 'allgather' || collective === 'reducescatter' ? n : 1);
  const out: number[] = [];
  for (let s = min; s <= max; s = s * factor) {
    const bytes = Math.max(unit, Math.floor(s / unit) * unit);
    if (!out.includes(bytes)) out.push(bytes);
    if (min === max) break;
  }
  return out;
}

export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** One line of the table, as --json writes it. */
export interface Row {
  bytes: number;
  count: number;
  time_us: number;
  p99_us: number;
  algbw_GBps: number;
  busbw_GBps: number;
  wrong: number;
  loop_delay_max_ms: number;
  rss_extra_MiB: number;
}

export const HEADER = '#        size         count      type   redop     time(us)  algbw(GB/s)  busbw(GB/s)   #wrong    p99(us)';

export function formatRow(r: Row, dtype: string, op: string): string {
  return [
    String(r.bytes).padStart(13), String(r.count).padStart(13), dtype.padStart(9), op.padStart(7),
    r.time_us.toFixed(1).padStart(12), r.algbw_GBps.toFixed(3).padStart(12), r.busbw_GBps.toFixed(3).padStart(12),
    String(r.wrong).padStart(8), r.p99_us.toFixed(1).padStart(10),
  ].join(' ');
}

export function average(rows: Row[]): number {
  return rows.length ? rows.reduce((a, r) => a + r.busbw_GBps, 0) / rows.length : 0;
}
