import { closeSync, openSync, writeFileSync } from 'node:fs';
import { DEFAULTS } from '@ringwire/common';

/**
 * The timeline (RINGWIRE_TIMELINE): each thread records spans into a growable Float64Array used
 * as a ring buffer (numbers only: no object per event on the hot path), and at close the caller's
 * thread writes both threads' spans as a Chrome trace (the JSON Perfetto and chrome://tracing
 * open): one process per rank; the engine thread and the tfjs steps as thread tracks of complete
 * ('X') events, and each collective as it is seen from the caller (call to resolution, which may
 * overlap other collectives) as a nestable async track ('b'/'e', id = its sequence number).
 */

/** Where a span goes. Caller spans are async (per op), the others strictly nested per thread. */
export const Track = { caller: 1, engine: 2, steps: 3 } as const;
export type TrackId = (typeof Track)[keyof typeof Track];
const TRACK_NAMES: Record<number, string> = { 1: 'caller', 2: 'engine', 3: 'steps (@ringwire/tfjs)' };

/** Phase names the engine and the algorithms mark by index (interned first, so id === index). */
export const PHASES = [
  'queued',
  'waiting for peers',
  'reduce-scatter',
  'all-gather',
  'tree',
  'broadcast',
  'copy',
  'copy in',
  'in the engine',
  'copy out',
] as const;
export const Phase = {
  queued: 0,
  waiting: 1,
  reduceScatter: 2,
  allGather: 3,
  tree: 4,
  broadcast: 5,
  copy: 6,
  copyIn: 7,
  inEngine: 8,
  copyOut: 9,
};

/** The string arguments of a span, by position. */
const ARG_KEYS = ['dtype', 'op', 'algo', 'transport'] as const;
/** track, name, t0, t1, seq, bytes, then one string id per ARG_KEYS (-1: none). */
const FIELDS = 6 + ARG_KEYS.length;

/** One thread's recorded spans, as posted between threads (plain data). */
export interface TimelineExport {
  names: string[];
  /** FIELDS numbers per span, oldest first; times are performance.now() of the recording thread. */
  data: Float64Array;
  /** performance.timeOrigin of the recording thread. */
  timeOrigin: number;
  dropped: number;
}

/** One thread's recorder. */
export class Timeline {
  private data: Float64Array;
  private n = 0;
  private readonly names: string[] = [];
  private readonly ids = new Map<string, number>();

  constructor(private readonly capacity = DEFAULTS.timelineEvents) {
    this.data = new Float64Array(Math.min(1024, capacity) * FIELDS);
    for (const p of PHASES) this.id(p);
  }

  /** A small number standing for `s` (names and string arguments are stored as these). */
  id(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) this.ids.set(s, (id = this.names.push(s) - 1));
    return id;
  }

  /**
   * Records the span [t0, t1] (performance.now() ms) named `name` (an id) on `track`; `seq` is
   * the op's sequence number or step (-1: none), the string arguments are ids (-1: none).
   */
  span(
    track: TrackId,
    name: number,
    t0: number,
    t1: number,
    seq = -1,
    bytes = -1,
    a0 = -1,
    a1 = -1,
    a2 = -1,
    a3 = -1,
  ): void {
    let cap = this.data.length / FIELDS;
    if (this.n >= cap && cap < this.capacity) {
      const grown = new Float64Array(Math.min(cap * 2, this.capacity) * FIELDS);
      grown.set(this.data);
      this.data = grown;
      cap = grown.length / FIELDS;
    }
    const d = this.data;
    const i = (this.n++ % cap) * FIELDS;
    d[i] = track;
    d[i + 1] = name;
    d[i + 2] = t0;
    d[i + 3] = t1;
    d[i + 4] = seq;
    d[i + 5] = bytes;
    d[i + 6] = a0;
    d[i + 7] = a1;
    d[i + 8] = a2;
    d[i + 9] = a3;
  }

  /** Records a span named by a string (for callers outside the hot path, e.g. @ringwire/tfjs steps). */
  record(track: TrackId, name: string, t0: number, t1: number, seq = -1): void {
    this.span(track, this.id(name), t0, t1, seq);
  }

  /** The spans recorded so far, oldest first (a copy). */
  export(): TimelineExport {
    const cap = this.data.length / FIELDS;
    const kept = Math.min(this.n, cap);
    const data = new Float64Array(kept * FIELDS);
    const start = this.n > cap ? this.n % cap : 0;
    data.set(this.data.subarray(start * FIELDS, kept * FIELDS));
    if (start) data.set(this.data.subarray(0, start * FIELDS), (kept - start) * FIELDS);
    return { names: [...this.names], data, timeOrigin: performance.timeOrigin, dropped: this.n - kept };
  }
}

/**
 * The phases of the op the engine is running, marked by the engine and the algorithms: each mark
 * starts a phase that lasts until the next mark. Reused for every op (no allocation per op).
 */
export class OpPhases {
  readonly at = new Float64Array(16);
  readonly ids = new Int32Array(16);
  n = 0;
  private next = -1;

  reset(): void {
    this.n = 0;
    this.next = -1;
  }

  /** From now on, phase `id` (an index of PHASES). */
  mark(id: number): void {
    if (this.n === this.at.length) return;
    this.at[this.n] = performance.now();
    this.ids[this.n++] = id;
  }

  /** Waiting for peers until the first frame arrives (see arrived), then phase `then`. */
  wait(then: number): void {
    this.mark(Phase.waiting);
    this.next = then;
  }

  /** A frame arrived: a wait ends here. */
  arrived(): void {
    if (this.next < 0) return;
    const then = this.next;
    this.next = -1;
    this.mark(then);
  }

  /** Records the marked phases on the engine track, the last one ending at `end`. */
  flush(tl: Timeline, end: number, seq: number, transport: number): void {
    for (let i = 0; i < this.n; i++) {
      const t1 = i + 1 < this.n ? this.at[i + 1] : end;
      if (t1 > this.at[i]) tl.span(Track.engine, this.ids[i], this.at[i], t1, seq, -1, -1, -1, -1, transport);
    }
  }
}

/**
 * Records one collective as the caller saw it: called at t0, staged (copied in) until t1, answered
 * by the engine at t2, copied out until t3.
 */
export function recordCall(
  tl: Timeline,
  kind: string,
  seq: number,
  bytes: number,
  dtype: string,
  op: string,
  algo: string | undefined,
  t: readonly [t0: number, t1: number, t2: number, t3: number],
): void {
  const [t0, t1, t2, t3] = t;
  tl.span(Track.caller, tl.id(kind), t0, t3, seq, bytes, tl.id(dtype), tl.id(op), algo ? tl.id(algo) : -1);
  if (t1 > t0) tl.span(Track.caller, Phase.copyIn, t0, t1, seq);
  tl.span(Track.caller, Phase.inEngine, t1, t2, seq);
  if (t3 > t2) tl.span(Track.caller, Phase.copyOut, t2, t3, seq);
}

/** The file rank `rank` writes for RINGWIRE_TIMELINE=`path`: trace.json -> trace.<rank>.json. */
export function rankPath(path: string, rank: number): string {
  return path.endsWith('.json') ? `${path.slice(0, -5)}.${rank}.json` : `${path}.${rank}.json`;
}

/** Why `path` cannot be written (it is created empty to find out), or undefined when it can. */
export function unwritable(path: string): string | undefined {
  try {
    closeSync(openSync(path, 'w'));
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** What a rank's trace file says about the rank besides its events (Chrome's `otherData`). */
export interface RankMeta {
  rank: number;
  size: number;
  host: string;
  /** Added to this rank's clock to get rank 0's, and the ping-pong round trip that measured it. */
  clockOffsetUs: number;
  clockRttUs: number;
}

type ChromeEvent = Record<string, unknown> & { ph: string; ts?: number };

/** Chrome trace events for one rank's recorded threads, on rank 0's clock. */
export function chromeEvents(meta: RankMeta, threads: TimelineExport[]): ChromeEvent[] {
  const pid = meta.rank;
  const out: ChromeEvent[] = [
    { ph: 'M', name: 'process_name', pid, args: { name: `rank ${meta.rank} (${meta.host})` } },
    { ph: 'M', name: 'process_sort_index', pid, args: { sort_index: meta.rank } },
  ];
  for (const [tid, name] of Object.entries(TRACK_NAMES))
    out.push({ ph: 'M', name: 'thread_name', pid, tid: Number(tid), args: { name } });
  // Sort keys: time, then (same time) ends before begins, an outer span's begin before an inner one's.
  const keyed: { e: ChromeEvent; ts: number; k: number }[] = [];
  let order = 0;
  for (const th of threads) {
    const base = th.timeOrigin * 1000 + meta.clockOffsetUs;
    const d = th.data;
    for (let i = 0; i < d.length; i += FIELDS, order++) {
      const track = d[i];
      const name = th.names[d[i + 1]];
      // Both ends from one formula: a span and its phases ending at the same instant end at the
      // same number, so nesting survives the rounding of epoch microseconds (0.25 us apart).
      const ts = base + d[i + 2] * 1000;
      const end = Math.max(ts, base + d[i + 3] * 1000);
      const dur = end - ts;
      const args: Record<string, string | number> = {};
      if (d[i + 4] >= 0) args[track === Track.steps ? 'step' : 'seq'] = d[i + 4];
      if (d[i + 5] >= 0) args.bytes = d[i + 5];
      ARG_KEYS.forEach((k, j) => d[i + 6 + j] >= 0 && (args[k] = th.names[d[i + 6 + j]]));
      if (track !== Track.caller) {
        // Longer first at the same start, so a parent precedes its phases.
        keyed.push({ e: { ph: 'X', name, cat: 'ringwire', pid, tid: track, ts, dur, args }, ts, k: -dur });
        continue;
      }
      const id = `${pid}.${d[i + 4]}`;
      const common = { name, cat: 'collective', pid, tid: track, id2: { local: id } };
      keyed.push({ e: { ph: 'b', ...common, ts, args }, ts, k: 1e15 + order });
      // A span of no length ends right after its own begin.
      keyed.push({ e: { ph: 'e', ...common, ts: end }, ts: end, k: dur > 0 ? -order : 1e15 + order + 0.5 });
    }
  }
  keyed.sort((a, b) => a.ts - b.ts || a.k - b.k);
  for (const { e } of keyed) out.push(e);
  return out;
}

/** A complete Chrome trace file's content. */
export function traceFile(events: ChromeEvent[], other: object): object {
  return { traceEvents: events, displayTimeUnit: 'ms', otherData: other };
}

/** Writes one rank's trace; returns the error message when it could not. */
export function writeRankTimeline(
  path: string,
  meta: RankMeta,
  threads: TimelineExport[],
): string | undefined {
  try {
    const dropped = threads.reduce((n, t) => n + t.dropped, 0);
    writeFileSync(
      path,
      JSON.stringify(traceFile(chromeEvents(meta, threads), { ringwire: [{ ...meta, dropped }] })),
    );
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
