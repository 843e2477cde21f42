import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { UsageError } from '@ringwire/common';

/** One host and how many workers it may run. */
export interface HostSlots {
  host: string;
  slots: number;
}

/** Where one rank runs. */
export interface Placement {
  rank: number;
  host: string;
  localRank: number;
  localSize: number;
  /** True when the host is this machine: the worker is spawned directly, without ssh. */
  local: boolean;
}

/** A malformed host list, hostfile or rank count; the CLI prints the message and exits 2. */
export { UsageError };

// A hostname, an IPv4 address, or a bracketed IPv6 address. Anything else would end up on an ssh command line.
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$/;

function slotCount(raw: string, where: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new UsageError(`${where}: slots must be a positive integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function checkHost(host: string, where: string): string {
  if (!HOST_RE.test(host)) throw new UsageError(`${where}: bad host name ${JSON.stringify(host)}`);
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

/** Parses `-H host:slots,host2:slots,...` (slots default to 1; IPv6 as `[::1]:2`). */
export function parseHostList(spec: string): HostSlots[] {
  const out: HostSlots[] = [];
  for (const item of spec.split(',')) {
    const entry = item.trim();
    const where = `-H ${JSON.stringify(spec)}`;
    if (!entry) throw new UsageError(`${where}: empty host entry`);
    const m = /^(\[[^\]]*\]|[^:]+)(?::([^:]*))?$/.exec(entry);
    if (!m) throw new UsageError(`${where}: expected host:slots, got ${JSON.stringify(entry)}`);
    out.push({ host: checkHost(m[1], where), slots: m[2] === undefined ? 1 : slotCount(m[2], where) });
  }
  return out;
}

/** Parses a hostfile: one `host [slots=N]` per line, `#` starts a comment. */
export function parseHostfile(text: string, name = 'hostfile'): HostSlots[] {
  const out: HostSlots[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const body = line.replace(/#.*/, '').trim();
    if (!body) return;
    const where = `${name}:${i + 1}`;
    const [host, ...rest] = body.split(/\s+/);
    let slots = 1;
    for (const word of rest) {
      const m = /^(?:slots|max_slots|max-slots)=(.*)$/.exec(word);
      if (!m) throw new UsageError(`${where}: expected "host slots=N", got ${JSON.stringify(body)}`);
      if (word.startsWith('slots=')) slots = slotCount(m[1], where);
    }
    out.push({ host: checkHost(host, where), slots });
  });
  if (out.length === 0) throw new UsageError(`${name}: no hosts listed`);
  return out;
}

/** Reads and parses a hostfile (see parseHostfile), naming the file in errors. */
export function readHostfile(path: string): HostSlots[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --hostfile: ${(err as Error).message}`);
  }
  return parseHostfile(text, path);
}

/** localhost, loopback addresses and this machine's hostname run without ssh. */
export function isLocalHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === hostname().toLowerCase();
}

/**
 * Fills hosts in order: the first host gets ranks 0..slots-1, the next the following ones.
 * Repeated hosts add up their slots (the first position counts). Without hosts, all ranks run here.
 */
export function placeRanks(np: number | undefined, hosts: HostSlots[] | undefined): Placement[] {
  const merged: HostSlots[] = [];
  // Names of this machine are one host: local ranks must not repeat on it (they pick GPUs).
  const same = (a: string, b: string) => a === b || (isLocalHost(a) && isLocalHost(b));
  for (const h of hosts ?? []) {
    const seen = merged.find((m) => same(m.host, h.host));
    if (seen) seen.slots += h.slots;
    else merged.push({ ...h });
  }
  const total = merged.reduce((s, h) => s + h.slots, 0);
  const n = np ?? (merged.length ? total : undefined);
  if (n === undefined) throw new UsageError('-np is required when no hosts are given');
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`-np must be a positive integer, got ${np}`);
  if (!merged.length)
    return Array.from({ length: n }, (_, rank) => ({
      rank,
      host: 'localhost',
      localRank: rank,
      localSize: n,
      local: true,
    }));
  if (n > total)
    throw new UsageError(
      `-np ${n} is more than the ${total} slots of the hosts given (${merged.map((h) => `${h.host}:${h.slots}`).join(',')})`,
    );
  const out: Placement[] = [];
  for (const h of merged) {
    const count = Math.min(h.slots, n - out.length);
    for (let i = 0; i < count; i++)
      out.push({
        rank: out.length,
        host: h.host,
        localRank: i,
        localSize: count,
        local: isLocalHost(h.host),
      });
  }
  return out;
}
