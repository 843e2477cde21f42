import { type Communicator, MismatchError } from 'ringwire';

export interface LayoutEntry {
  name: string;
  shape: number[];
  dtype: string;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Checks that every rank is about to exchange the same tensors (count, shapes, dtypes, and the
 * settings in `extra`): one small all-gather of a JSON description. A difference fails every rank
 * with RINGWIRE_ERR_MISMATCH naming the first differing tensor, instead of the core's generic
 * descriptor mismatch. Names are reported but not compared (two models in one process get
 * different layer names).
 */
export async function checkLayout(
  comm: Communicator,
  what: string,
  entries: LayoutEntry[],
  extra: Record<string, unknown> = {},
): Promise<void> {
  const mine = { extra, vars: entries.map((e) => [e.name, e.shape, e.dtype]) };
  const bytes = new TextEncoder().encode(JSON.stringify(mine));
  const all = (await comm.allgather(bytes)).map(
    (b) => JSON.parse(new TextDecoder().decode(b)) as typeof mine,
  );
  const key = (d: typeof mine) => JSON.stringify([d.extra, d.vars.map((v) => [v[1], v[2]])]);
  const ref = key(all[0]);
  const bad = all.findIndex((d) => key(d) !== ref);
  if (bad < 0) return;
  const describe = (r: number) => {
    const d = all[r];
    const n = d.vars.reduce((s, v) => s + size(v[1] as number[]), 0);
    return `rank ${r}: ${d.vars.length} tensors, ${n} elements, ${JSON.stringify(d.extra)}`;
  };
  let first = '';
  const a = all[0].vars;
  const b = all[bad].vars;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ? `${a[i][0]} ${JSON.stringify(a[i][1])} ${a[i][2]}` : '(none)';
    const y = b[i] ? `${b[i][0]} ${JSON.stringify(b[i][1])} ${b[i][2]}` : '(none)';
    if (!a[i] || !b[i] || JSON.stringify([a[i][1], a[i][2]]) !== JSON.stringify([b[i][1], b[i][2]])) {
      first = `; first difference at tensor #${i}: rank 0 has ${x}, rank ${bad} has ${y}`;
      break;
    }
  }
  throw new MismatchError(
    `${what}: ranks disagree on the tensors to exchange (${describe(0)}; ${describe(bad)})${first}`,
    { rank: bad },
  );
}

/** A key that is equal on two ranks only when their tensors have the same shapes and dtypes. */
export function layoutKey(entries: LayoutEntry[], extra: Record<string, unknown>): string {
  return JSON.stringify([extra, entries.map((e) => [e.shape, e.dtype])]);
}
