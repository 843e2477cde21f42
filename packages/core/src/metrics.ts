import { DEFAULTS } from '@ringwire/common';
import type { Collective, MetricsReport } from '@ringwire/rendezvous';
import { busFactor, type CounterValues } from './counters.js';

/**
 * One engine's counters: for the rendezvous's /metrics and live job page (reported every few
 * seconds), and for ringrun's end-of-job summary (`values`, left in the rendezvous at close). Counting an op costs a
 * few additions and, while fewer than DEFAULTS.metricsMaxSamples ops ran since the last report,
 * one small array push; everything else happens when a report is taken.
 */
export class EngineMetrics {
  private readonly ops: Partial<Record<Collective, number>> = {};
  private readonly bytes: Partial<Record<Collective, number>> = {};
  private samples: [Collective, number, number][] = [];
  private steps: number[] = [];
  private stalls = 0;
  private lostPeers = 0;
  private lastStall: MetricsReport['stall'] = null;
  /** Payload bytes handed to peers; the algorithms add to it (through OpContext.stats). */
  sent = 0;
  private total = 0;
  private busBytes = 0;
  private busyMs = 0;

  /** One finished collective over `n` ranks: its payload bytes and how long it ran. */
  op(kind: Collective, bytes: number, us: number, n: number): void {
    this.total++;
    this.busBytes += bytes * busFactor(kind, n);
    this.busyMs += us / 1e3;
    this.ops[kind] = (this.ops[kind] ?? 0) + 1;
    this.bytes[kind] = (this.bytes[kind] ?? 0) + bytes;
    if (this.samples.length < DEFAULTS.metricsMaxSamples) this.samples.push([kind, bytes, Math.round(us)]);
  }

  /** One training step's time, as the caller measured it. */
  step(ms: number): void {
    if (this.steps.length < DEFAULTS.metricsMaxSamples) this.steps.push(ms);
  }

  /** A stall warning naming the ranks that had not arrived. */
  stalled(ranks: number[], text: string): void {
    this.stalls++;
    this.lastStall = { ranks, text, at: Date.now() };
  }

  /** A peer's connection was lost. */
  lost(): void {
    this.lostPeers++;
  }

  /** The report to send now; the samples and steps in it are not sent again. */
  take(generation: number, running: MetricsReport['running'], error: MetricsReport['error']): MetricsReport {
    const report: MetricsReport = {
      generation,
      ops: { ...this.ops },
      bytes: { ...this.bytes },
      samples: this.samples,
      steps: this.steps,
      stalls: this.stalls,
      lostPeers: this.lostPeers,
      stall: this.lastStall,
      running,
      error,
    };
    this.samples = [];
    this.steps = [];
    return report;
  }

  /** The totals of the whole job for ringrun's summary: busbw = busBytes / busyMs. */
  values(rank: number): CounterValues {
    return { rank, ops: this.total, bytesSent: this.sent, busBytes: this.busBytes, busyMs: this.busyMs };
  }
}
