import { constants as osc } from 'node:os';
import { ErrorCode, escapeLog } from '@ringwire/common';
import type { Placement } from './hosts.js';
import type { LaunchResult } from './launch.js';

/** How one worker ended, in the order ringrun saw the exits. */
export interface WorkerEnd {
  p: Placement;
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: Error;
  /** ringrun had already told it to stop: its status says nothing about the failure. */
  stopped: boolean;
}

/** A failure the rendezvous heard of: reported by a worker (`from`), or detected (a lost connection). */
export interface FailureReport {
  /** The reporting rank; absent when the rendezvous itself detected the failure. */
  from?: number;
  /** The rank the error names (a lost peer), else the reporter. */
  rank: number;
  reason: string;
  code: string;
  /** It came after ringrun began stopping workers, so it may be the stop's own consequence. */
  stopped: boolean;
}

/** The verdict: the result to return, and the lines to print (the cause first, then the rest). */
export interface Verdict extends LaunchResult {
  lines: string[];
}

/**
 * Decides which rank is at the root of a failed job from real evidence: the first failure a
 * worker reported to the rendezvous and the ranks it names (a lost peer; the ranks a stalled op
 * waited for), else the first the rendezvous detected (a lost connection: a worker that exits
 * right after its error may not get its report out), else the first worker to exit non-zero on
 * its own. A rank that failed because it was told another had (aborted, lost a peer) is not the
 * cause. The code is the cause's own exit code, or, when ringrun had to stop it (a stalled
 * rank), the first failed worker's. Returns undefined when no worker failed on its own.
 */
export function rootCause(ends: WorkerEnd[], reports: FailureReport[]): Verdict | undefined {
  const own = ends.filter((e) => !e.stopped && (e.spawnError !== undefined || e.code !== 0));
  if (own.length === 0) return undefined;
  const endOf = (rank: number) => ends.find((e) => e.p.rank === rank);
  // Unknown ranks, or only ranks ringrun itself had stopped when the report came: no evidence.
  const usable = reports.filter((r) => {
    const named = namedRanks(r);
    return named.every((n) => endOf(n)) && !(r.stopped && named.every((n) => endOf(n)!.stopped));
  });
  const abort = usable.find((r) => r.from !== undefined) ?? usable[0];
  const named = abort ? namedRanks(abort) : [];
  const first = named.length ? endOf(named[0])! : own[0];
  const coded = own.includes(first) ? first : own[0];
  const f = failure(coded);
  const verdict: Verdict = { code: f.code, failedRank: first.p.rank, lines: [] };
  if (coded === first && f.signal) verdict.signal = f.signal;
  // A lost peer that exited on its own: its exit says more than "connection closed".
  if (named.length === 0 || (abort!.code === ErrorCode.PEER_LOST && coded === first))
    verdict.reason = f.reason;
  else {
    const who = named.length > 1 ? `ranks ${named.join(', ')}` : whoIs(first.p);
    const reporter = abort!.from ?? abort!.rank;
    const by =
      abort!.code === ErrorCode.TIMEOUT && reporter !== first.p.rank ? ` (rank ${reporter} timed out)` : '';
    const how =
      coded === first
        ? `; exit code ${f.code}${f.signal ? ` (${f.signal})` : ''}`
        : `; it ${first.stopped ? 'was still running and was stopped' : 'exited with code 0'}; exit code ${f.code} (${whoIs(coded.p)}'s)`;
    verdict.reason = `${who} failed first${by}: ${escapeLog(abort!.reason, 1000)}${how}`;
  }
  verdict.lines.push(verdict.reason!);
  for (const e of own) if (e !== first) verdict.lines.push(`then ${failure(e).reason}`);
  return verdict;
}

/** The ranks an abort names: for a timeout those it waited for (from the message), else its rank. */
function namedRanks(a: FailureReport): number[] {
  if (a.code !== ErrorCode.TIMEOUT) return [a.rank];
  // The engine's wording (engine.ts, late()): "ranks not arrived at op #N: 1 (at op #0), 3 (...)"
  // and "ranks not answering: 2, 4". The rendezvous keeps only the message.
  const ranks: number[] = [];
  const late = /ranks not arrived at op #\d+: ([^;]*)/.exec(a.reason)?.[1];
  for (const m of late?.matchAll(/(?:^|, )(\d+) \(/g) ?? []) ranks.push(Number(m[1]));
  const silent = /ranks not answering: ([\d, ]+)/.exec(a.reason)?.[1];
  for (const r of silent?.split(', ') ?? []) if (r) ranks.push(Number(r));
  return ranks.length ? ranks : [a.rank];
}

function whoIs(p: Placement): string {
  return `rank ${p.rank}${p.local ? '' : ` (on ${p.host})`}`;
}

/** The result of a worker that failed, and the line that says how. */
export function failure(e: WorkerEnd): LaunchResult & { reason: string } {
  const { p, code, signal, spawnError } = e;
  const who = whoIs(p);
  if (spawnError) {
    const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      code: missing ? 127 : 126,
      failedRank: p.rank,
      reason: `${who} could not be started: ${spawnError.message}`,
    };
  }
  if (signal)
    return {
      code: 128 + (osc.signals[signal] ?? 0),
      failedRank: p.rank,
      signal,
      reason: `${who} was killed by ${signal}`,
    };
  const c = code ?? 1;
  if (!p.local) {
    // Through ssh a signal shows as the shell's 128+n; 255 is ssh's own failure.
    const sig =
      c > 128
        ? (Object.entries(osc.signals).find(([, n]) => n === c - 128)?.[0] as NodeJS.Signals | undefined)
        : undefined;
    if (sig)
      return {
        code: c,
        failedRank: p.rank,
        signal: sig,
        reason: `${who} was killed by ${sig} (remote exit status ${c})`,
      };
    if (c === 255)
      return {
        code: c,
        failedRank: p.rank,
        reason: `${who} exited with code 255: ssh failed (see its message above) or the command exited 255`,
      };
    if (c === 127)
      return {
        code: c,
        failedRank: p.rank,
        reason: `${who} exited with code 127: command not found on ${p.host}`,
      };
  }
  return { code: c, failedRank: p.rank, reason: `${who} exited with code ${c}` };
}
