/**
 * Clock alignment for the timeline, as NTP estimates an offset: a ping at local time t0 is
 * answered with the reference's time r and arrives back at t1; assuming the two legs take equally
 * long, offset = r - (t0 + t1) / 2, with an error of at most rtt / 2. The sample with the least
 * round trip (the least queueing) wins.
 */

/** Microseconds since the epoch on this process's clock: comparable across its threads. */
export const clockUs = (): number => (performance.timeOrigin + performance.now()) * 1000;

/** An offset to add to local clockUs() to get the reference's, and the round trip it was measured with. */
export interface ClockOffset {
  offsetUs: number;
  rttUs: number;
}

/**
 * Measures the offset of the reference clock with `samples` sequential pings; `ping` resolves
 * with the reference's clockUs() when it answered. Undefined when no ping was answered in time.
 */
export async function measureOffset(
  ping: () => Promise<number>,
  samples: number,
  timeoutMs: number,
): Promise<ClockOffset | undefined> {
  let best: ClockOffset | undefined;
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < samples && Date.now() < deadline; i++) {
    const t0 = clockUs();
    const remote = await Promise.race([
      ping(),
      new Promise<undefined>((r) =>
        setTimeout(() => r(undefined), Math.max(1, deadline - Date.now())).unref(),
      ),
    ]);
    const t1 = clockUs();
    if (remote === undefined) break;
    const rttUs = t1 - t0;
    if (!best || rttUs < best.rttUs) best = { offsetUs: remote - (t0 + t1) / 2, rttUs };
  }
  return best;
}
