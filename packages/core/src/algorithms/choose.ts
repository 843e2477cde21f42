import type { Algo } from '@ringwire/common';
import type { Topology } from './topology.js';

/** What an all-reduce ran with: `auto` resolved. */
export type Chosen = Exclude<Algo, 'auto'>;

/**
 * The constants of the all-reduce cost model (alpha-beta: a step costs its latency plus its bytes
 * over the bandwidth of the link it crosses). Documented rather than measured at start-up: the
 * choice between ring and hierarchical turns on their ratio, not their values, and measuring at
 * start-up would slow every init by the probes. Latencies are one pipelined ring step measured on
 * this project's machines (loopback TCP + WebSocket frame + an event-loop turn; a shared-memory
 * hand-over); bandwidths are a 10 Gbit/s inter-host link and the shared-memory ring's busbw.
 */
export const COST = {
  netLatencyS: 60e-6,
  shmLatencyS: 15e-6,
  netBytesPerS: 1.25e9,
  shmBytesPerS: 4e9,
} as const;

/** Seconds the model predicts for an all-reduce of `bytes` with `algo` (ring or hierarchical). */
export function predictSeconds(algo: 'ring' | 'hierarchical', bytes: number, topo: Topology): number {
  const n = topo.order.length;
  const hosts = topo.hosts.length;
  const { netLatencyS: a, shmLatencyS: as, netBytesPerS: b, shmBytesPerS: bs } = COST;
  // The slowest step of a flat ring crosses a host boundary whenever there are several hosts.
  if (algo === 'ring')
    return 2 * (n - 1) * (hosts > 1 ? a : as) + (2 * (n - 1) * bytes) / n / (hosts > 1 ? b : bs);
  const l = topo.perHost;
  // Two local phases over shared memory; the middle one moves all L slices over the host's link.
  return (
    2 * (l - 1) * as +
    (2 * (l - 1) * bytes) / l / bs +
    2 * (hosts - 1) * a +
    (2 * (hosts - 1) * bytes) / hosts / b
  );
}

/**
 * The all-reduce algorithm for `bytes` on `topo`: a forced one as asked (hierarchical falls back
 * to the ring where it does not apply), otherwise the tree below `crossoverBytes` (the measured
 * latency/bandwidth crossover) and above it whichever of ring and hierarchical the cost model
 * predicts faster.
 */
export function chooseAllreduce(forced: Algo, bytes: number, topo: Topology, crossoverBytes: number): Chosen {
  if (forced === 'hierarchical') return topo.layered ? 'hierarchical' : 'ring';
  if (forced !== 'auto') return forced;
  if (bytes < crossoverBytes) return 'tree';
  if (!topo.layered) return 'ring';
  return predictSeconds('hierarchical', bytes, topo) < predictSeconds('ring', bytes, topo)
    ? 'hierarchical'
    : 'ring';
}
