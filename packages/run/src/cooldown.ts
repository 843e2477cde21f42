/** A host is excluded after this many worker failures within one cooldown period. */
export const HOST_FAILURES = 3;

/**
 * Hosts whose workers keep failing, as horovodrun's blacklist: after HOST_FAILURES failures
 * within `cooldownMs`, a host gets no new workers (starts or restarts) for `cooldownMs`. Workers
 * still running there are left alone: they are doing their work.
 */
export class HostCooldown {
  private readonly failures = new Map<string, number[]>();
  private readonly until = new Map<string, number>();

  constructor(
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a worker failure on `host`; true when this failure excludes the host. */
  failed(host: string): boolean {
    const t = this.now();
    const recent = (this.failures.get(host) ?? []).filter((f) => t - f < this.cooldownMs);
    recent.push(t);
    this.failures.set(host, recent);
    if (recent.length < HOST_FAILURES || this.excluded(host)) return false;
    this.until.set(host, t + this.cooldownMs);
    this.failures.delete(host);
    return true;
  }

  /** Whether `host` is in its cooldown now. */
  excluded(host: string): boolean {
    const end = this.until.get(host);
    if (end === undefined) return false;
    if (this.now() < end) return true;
    this.until.delete(host);
    return false;
  }

  /** Milliseconds until the next cooldown ends, or undefined when no host is excluded. */
  nextEndIn(): number | undefined {
    const ends = [...this.until.values()];
    return ends.length ? Math.max(0, Math.min(...ends) - this.now()) : undefined;
  }
}
