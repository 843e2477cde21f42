/**
 * Where the ranks run, from the rendezvous peer table: the ranks of each host, hosts in order of
 * their lowest rank. Every rank builds the same Topology from the same table, so the groups and
 * orders derived here agree across the job without any exchange.
 */
export class Topology {
  /** Ranks of each host, ascending. */
  readonly hosts: readonly (readonly number[])[];
  /** Every rank, host by host: the flat ring in this order crosses each host boundary once per direction. */
  readonly order: readonly number[];
  /** Ranks per host when every host has the same number, else 0. */
  readonly perHost: number;

  constructor(hosts: readonly (readonly number[])[]) {
    this.hosts = hosts.map((rs) => [...rs].sort((a, b) => a - b));
    this.order = this.hosts.flat();
    const l = this.hosts[0]?.length ?? 0;
    this.perHost = this.hosts.every((rs) => rs.length === l) ? l : 0;
  }

  /** One host holding ranks 0..size-1. */
  static single(size: number): Topology {
    return new Topology([Array.from({ length: size }, (_, r) => r)]);
  }

  /** Whether `order` is 0..n-1 already (then the algorithms need no rank mapping). */
  get identity(): boolean {
    return this.order.every((r, i) => r === i);
  }

  /** Whether a two-level algorithm applies: several hosts, several ranks on each, as many on each. */
  get layered(): boolean {
    return this.hosts.length > 1 && this.perHost > 1;
  }

  /** Layout name as the benchmarks print it: hosts x ranks per host (`2x2`), or the counts (`3+1`). */
  get layout(): string {
    return this.perHost ? `${this.hosts.length}x${this.perHost}` : this.hosts.map((h) => h.length).join('+');
  }
}
