import { DEFAULTS } from '@ringwire/common';
import { Counter, Gauge, Histogram, type Metric, type MetricObject, Registry } from 'prom-client';
import { COLLECTIVES, type Collective, type MetricsReport, type Untrusted } from '../protocol.js';

/** What the live job page shows of one rank, from its reports. */
export interface RankMetrics {
  rank: number;
  /** When the latest report came (ms since the epoch). */
  at: number;
  generation: number;
  ops: number;
  bytes: number;
  /** [time ms, bytes/s] between consecutive reports, oldest first (DEFAULTS.dashboardHistory). */
  rate: [number, number][];
  /** The latest step time, ms (null before the first). */
  stepMs: number | null;
  stalls: number;
  stall: MetricsReport['stall'];
  lostPeers: number;
  running: MetricsReport['running'];
  error: MetricsReport['error'];
}

interface RankState {
  last: MetricsReport;
  view: RankMetrics;
}

const TEXT_MAX = 2000;
const LABELS = ['job', 'rank', 'collective'] as const;

/**
 * The ranks' counters, kept per job and rank, as prom-client metrics (served at /metrics) and as
 * the live job page's per-rank view. Reports are cumulative: a counter grows by the difference
 * to the previous report (a fresh communicator, which starts again from zero, counts in full).
 */
export class MetricsStore {
  private readonly registry = new Registry();
  private readonly jobs = new Map<string, Map<number, RankState>>();
  private readonly registers = [this.registry];
  private readonly ops = new Counter({
    name: 'ringwire_operations_total',
    help: 'Collective operations finished, per job, rank and collective',
    labelNames: LABELS,
    registers: this.registers,
  });
  private readonly bytes = new Counter({
    name: 'ringwire_bytes_total',
    help: "Payload bytes of the finished collectives (the rank's buffer as the collective carries it)",
    labelNames: LABELS,
    registers: this.registers,
  });
  private readonly opSeconds = new Histogram({
    name: 'ringwire_operation_duration_seconds',
    help: `Time of one collective, from sampled ops (at most ${DEFAULTS.metricsMaxSamples} per report)`,
    labelNames: LABELS,
    buckets: [1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
    registers: this.registers,
  });
  private readonly busbw = new Histogram({
    name: 'ringwire_bus_bandwidth_bytes_per_second',
    help: 'Bus bandwidth of one collective (as nccl-tests defines it), from sampled ops with a payload',
    labelNames: LABELS,
    buckets: [1e6, 1e7, 1e8, 2.5e8, 5e8, 1e9, 2.5e9, 5e9, 1e10, 2.5e10, 1e11],
    registers: this.registers,
  });
  private readonly stepSeconds = new Histogram({
    name: 'ringwire_step_duration_seconds',
    help: 'Training step time as the optimizer measured it (Communicator.recordStep)',
    labelNames: ['job', 'rank'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: this.registers,
  });
  private readonly stalls = new Counter({
    name: 'ringwire_stall_warnings_total',
    help: 'Stall warnings (a collective without progress for the stall warning time)',
    labelNames: ['job', 'rank'],
    registers: this.registers,
  });
  private readonly lostPeers = new Counter({
    name: 'ringwire_lost_peers_total',
    help: 'Peer connections this rank lost',
    labelNames: ['job', 'rank'],
    registers: this.registers,
  });
  private readonly generation = new Gauge({
    name: 'ringwire_generation',
    help: "The job's rendezvous generation (it grows each time the job forms again)",
    labelNames: ['job'],
    registers: this.registers,
  });
  private readonly up = new Gauge({
    name: 'ringwire_rank_up',
    help: '1 while the rank is connected to the rendezvous, 0 once it is gone',
    labelNames: ['job', 'rank', 'host'],
    registers: this.registers,
  });

  /**
   * One member's report (unchecked, from the network). Returns false, changing nothing, when it
   * is malformed: a member's bad report does not disturb its job.
   */
  ingest(job: string, rank: number, size: number, msg: Untrusted): boolean {
    const r = checkReport(msg);
    if (!r) return false;
    const ranks = this.jobs.get(job) ?? new Map<number, RankState>();
    this.jobs.set(job, ranks);
    const prev = ranks.get(rank);
    const last = prev?.last;
    const labels = { job, rank: String(rank) };
    const delta = (now: number, before: number | undefined) =>
      before === undefined || now < before ? now : now - before;
    for (const c of COLLECTIVES) {
      const ops = delta(r.ops[c] ?? 0, last?.ops[c]);
      const bytes = delta(r.bytes[c] ?? 0, last?.bytes[c]);
      if (ops) this.ops.inc({ ...labels, collective: c }, ops);
      if (bytes) this.bytes.inc({ ...labels, collective: c }, bytes);
    }
    for (const [c, bytes, us] of r.samples) {
      const s = us / 1e6;
      this.opSeconds.observe({ ...labels, collective: c }, s);
      if (bytes > 0 && us > 0 && size > 1)
        this.busbw.observe({ ...labels, collective: c }, (bytes * busFactor(c, size)) / s);
    }
    for (const ms of r.steps) this.stepSeconds.observe(labels, ms / 1000);
    const stalls = delta(r.stalls, last?.stalls);
    const lost = delta(r.lostPeers, last?.lostPeers);
    if (stalls) this.stalls.inc(labels, stalls);
    if (lost) this.lostPeers.inc(labels, lost);
    this.generation.set({ job }, r.generation);

    const now = Date.now();
    const total = sum(r.bytes);
    const rate = prev ? prev.view.rate.slice(-(DEFAULTS.dashboardHistory - 1)) : [];
    if (prev && now > prev.view.at)
      rate.push([now, (delta(total, prev.view.bytes) * 1000) / (now - prev.view.at)]);
    ranks.set(rank, {
      last: r,
      view: {
        rank,
        at: now,
        generation: r.generation,
        ops: sum(r.ops),
        bytes: total,
        rate,
        stepMs: r.steps.length ? r.steps[r.steps.length - 1] : (prev?.view.stepMs ?? null),
        stalls: r.stalls,
        stall: r.stall,
        lostPeers: r.lostPeers,
        running: r.running,
        error: r.error,
      },
    });
    return true;
  }

  /** The per-rank view of one job for the live job page. */
  ranks(job: string): RankMetrics[] {
    return [...(this.jobs.get(job)?.values() ?? [])].map((s) => s.view).sort((a, b) => a.rank - b.rank);
  }

  /**
   * The Prometheus text of the given jobs only (a scraper sees the jobs its credential opens),
   * with each member's liveness. Jobs the server no longer holds are forgotten first.
   */
  async render(
    visible: { id: string; members: { rank: number | null; host: string; alive: boolean }[] }[],
    held: Iterable<string>,
  ): Promise<string> {
    this.prune(new Set(held));
    for (const job of visible)
      for (const m of job.members)
        if (m.rank !== null)
          this.up.set({ job: job.id, rank: String(m.rank), host: m.host }, m.alive ? 1 : 0);
    const ids = new Set(visible.map((j) => j.id));
    // Each metric through a filter of its values: prom-client writes the text format.
    const view = new Registry();
    for (const metric of this.registry.getMetricsAsArray() as (MetricObject & Pick<Metric, 'get'>)[]) {
      const filtered = {
        name: metric.name,
        get: async () => {
          const m = await metric.get();
          return { ...m, values: m.values.filter((v) => ids.has(String(v.labels.job))) };
        },
      };
      view.registerMetric(filtered as unknown as Metric);
    }
    return view.metrics();
  }

  /** The content type of `render`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Forgets the metrics of every job not in `held` (the server forgot the job). */
  prune(held: Set<string>): void {
    for (const [job, ranks] of this.jobs) {
      if (held.has(job)) continue;
      this.jobs.delete(job);
      this.generation.remove({ job });
      for (const rank of ranks.keys()) {
        const labels = { job, rank: String(rank) };
        for (const collective of COLLECTIVES)
          for (const m of [this.ops, this.bytes, this.opSeconds, this.busbw])
            m.remove({ ...labels, collective });
        for (const m of [this.stepSeconds, this.stalls, this.lostPeers]) m.remove(labels);
      }
    }
    // Liveness is set afresh at each scrape from the server's own view.
    this.up.reset();
  }
}

/** nccl-tests' bus bandwidth factor, relative to this rank's payload bytes. */
function busFactor(c: Collective, n: number): number {
  switch (c) {
    case 'allreduce':
      return (2 * (n - 1)) / n;
    case 'reducescatter':
      return (n - 1) / n;
    case 'allgather':
      return n - 1;
    default:
      return 1;
  }
}

function sum(o: Partial<Record<Collective, number>>): number {
  let s = 0;
  for (const c of COLLECTIVES) s += o[c] ?? 0;
  return s;
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, TEXT_MAX) : '');
const isCollective = (v: unknown): v is Collective => COLLECTIVES.includes(v as Collective);

function perCollective(v: unknown): Partial<Record<Collective, number>> | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const out: Partial<Record<Collective, number>> = {};
  for (const [k, n] of Object.entries(v)) {
    if (!isCollective(k) || !count(n)) return undefined;
    out[k] = n;
  }
  return out;
}

/** A report checked field by field (it comes from the network), or undefined when malformed. */
function checkReport(m: Untrusted): MetricsReport | undefined {
  const ops = perCollective(m.ops);
  const bytes = perCollective(m.bytes);
  const max = DEFAULTS.metricsMaxSamples;
  const { samples, steps, stall, running, error } = m;
  if (!ops || !bytes || !count(m.generation) || !count(m.stalls) || !count(m.lostPeers)) return undefined;
  if (!Array.isArray(samples) || samples.length > max || !Array.isArray(steps) || steps.length > max)
    return undefined;
  if (!samples.every((s) => Array.isArray(s) && isCollective(s[0]) && count(s[1]) && count(s[2])))
    return undefined;
  if (!steps.every(count)) return undefined;
  const s = stall as MetricsReport['stall'];
  if (s !== null && (typeof s !== 'object' || !Array.isArray(s.ranks) || !s.ranks.every(count)))
    return undefined;
  const run = running as MetricsReport['running'];
  if (run !== null && (typeof run !== 'object' || !isCollective(run.collective))) return undefined;
  const e = error as MetricsReport['error'];
  if (e !== null && typeof e !== 'object') return undefined;
  return {
    generation: m.generation,
    ops,
    bytes,
    samples: samples as MetricsReport['samples'],
    steps: steps as number[],
    stalls: m.stalls,
    lostPeers: m.lostPeers,
    stall: s && { ranks: s.ranks.slice(0, 4096), text: text(s.text), at: Number(s.at) || 0 },
    running: run && {
      seq: Number(run.seq) || 0,
      collective: run.collective,
      bytes: Number(run.bytes) || 0,
      ms: Number(run.ms) || 0,
    },
    error: e && { code: text(e.code), message: text(e.message) },
  };
}
