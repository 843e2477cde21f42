import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rankPath, traceFile } from 'ringwire';

type Event = { ph: string; ts?: number };

/**
 * Merges the ranks' timeline files (path.<rank>.json, on rank 0's clock) into one Chrome trace at
 * `path`, its times counted from the earliest event, and removes the parts. Returns the ranks
 * whose file was missing or unreadable (a remote host's files stay there; a rank that failed may
 * have written none) with why.
 */
export function mergeTimelines(path: string, ranks: number[]): string[] {
  const events: Event[] = [];
  const other: unknown[] = [];
  const missing: string[] = [];
  for (const r of ranks) {
    const part = rankPath(path, r);
    try {
      const t = JSON.parse(readFileSync(part, 'utf8')) as {
        traceEvents: Event[];
        otherData?: { ringwire?: unknown[] };
      };
      events.push(...t.traceEvents);
      other.push(...(t.otherData?.ringwire ?? []));
      rmSync(part, { force: true });
    } catch (err) {
      missing.push(`rank ${r} (${(err as Error).message})`);
    }
  }
  let origin = Number.POSITIVE_INFINITY;
  for (const e of events) if (e.ts !== undefined && e.ts < origin) origin = e.ts;
  // Same-magnitude doubles subtract exactly: nesting within a rank is kept.
  for (const e of events) if (e.ts !== undefined) e.ts -= origin;
  writeFileSync(path, JSON.stringify(traceFile(events as never[], { ringwire: other, originUs: origin })));
  return missing;
}
