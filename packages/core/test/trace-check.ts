// Checks a Chrome trace written by the timeline (shared by the core, run and tfjs tests).
import { readFileSync } from 'node:fs';

export type TraceEvent = {
  ph: string;
  name: string;
  pid: number;
  tid?: number;
  ts?: number;
  dur?: number;
  id2?: { local: string };
  args?: Record<string, unknown>;
};
export interface Trace {
  traceEvents: TraceEvent[];
  otherData: { ringwire: { rank: number; clockRttUs: number }[] };
}

export const readTrace = (path: string): Trace => JSON.parse(readFileSync(path, 'utf8')) as Trace;

/** Rounding of epoch microseconds (doubles near 1.8e15 are 0.25 us apart). */
const EPS = 0.5;

/**
 * Problems with the trace (none: []): per rank, every thread track's complete events nest
 * (phases never overlap each other nor leave their op), every async op track's begins and ends
 * pair up and nest, and the engine ran every sequence number 1..ops with its phases inside.
 */
export function traceProblems(t: Trace, ranks: number[], ops: number): string[] {
  const bad: string[] = [];
  const evs = t.traceEvents;
  for (const r of ranks) {
    if (!evs.some((e) => e.ph === 'M' && e.name === 'process_name' && e.pid === r))
      bad.push(`rank ${r}: no process`);
    for (const tid of [2, 3]) {
      const xs = evs
        .filter((e) => e.ph === 'X' && e.pid === r && e.tid === tid)
        .sort((a, b) => a.ts! - b.ts! || b.dur! - a.dur!);
      const stack: TraceEvent[] = [];
      for (const e of xs) {
        while (stack.length && stack[stack.length - 1].ts! + stack[stack.length - 1].dur! <= e.ts! + EPS)
          stack.pop();
        const top = stack[stack.length - 1];
        if (top && e.ts! + e.dur! > top.ts! + top.dur! + EPS)
          bad.push(`rank ${r} tid ${tid}: ${e.name}@${e.ts} overlaps ${top.name}@${top.ts}`);
        stack.push(e);
      }
    }
    const byId = new Map<string, TraceEvent[]>();
    for (const e of evs)
      if ((e.ph === 'b' || e.ph === 'e') && e.pid === r)
        byId.set(e.id2!.local, [...(byId.get(e.id2!.local) ?? []), e]);
    for (const [id, list] of byId) {
      const open: string[] = [];
      let last = Number.NEGATIVE_INFINITY;
      for (const e of list) {
        if (e.ts! < last) bad.push(`rank ${r} op ${id}: events out of order`);
        last = e.ts!;
        if (e.ph === 'b') open.push(e.name);
        else if (open.pop() !== e.name) bad.push(`rank ${r} op ${id}: ${e.name} ends out of nesting`);
      }
      if (open.length) bad.push(`rank ${r} op ${id}: ${open.join(', ')} never end`);
    }
    const seqs = engineOps(t, r).map((e) => e.args!.seq as number);
    const want = Array.from({ length: ops }, (_, i) => i + 1);
    if (JSON.stringify(seqs.sort((a, b) => a - b)) !== JSON.stringify(want))
      bad.push(`rank ${r}: engine ops ${seqs.join(',')}, want 1..${ops}`);
    const callerSeqs = evs.filter((e) => e.ph === 'b' && e.pid === r && e.args?.bytes !== undefined).length;
    if (callerSeqs !== ops) bad.push(`rank ${r}: ${callerSeqs} caller ops, want ${ops}`);
  }
  return bad;
}

/** The engine track's collectives of rank r (their phases excluded), by start. */
export function engineOps(t: Trace, r: number): TraceEvent[] {
  return t.traceEvents
    .filter((e) => e.ph === 'X' && e.pid === r && e.tid === 2 && e.args?.bytes !== undefined)
    .sort((a, b) => a.ts! - b.ts!);
}

/** The engine phases of op `seq` on rank r, by start. */
export function phasesOf(t: Trace, r: number, seq: number): string[] {
  return t.traceEvents
    .filter(
      (e) => e.ph === 'X' && e.pid === r && e.tid === 2 && e.args?.seq === seq && e.args.bytes === undefined,
    )
    .sort((a, b) => a.ts! - b.ts!)
    .map((e) => e.name);
}
