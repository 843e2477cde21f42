/**
 * Every timeout and limit, with its default, in one place. Environment variables named here
 * override the defaults (see `envNumber`); explicit options override both.
 */
export const DEFAULTS = {
  /** A timeline keeps at most this many events per thread (the newest; older ones are dropped). */
  timelineEvents: 500_000,
  /** Clock alignment for the timeline: ping-pongs with rank 0, and the bound on all of them. */
  clockSamples: 8,
  clockSyncTimeoutMs: 2_000,
  /** A join waits this long for the rest of the job (the first start may be slow: installs, JIT). */
  joinTimeoutMs: 120_000,
  /** How often a client proves it is alive (at most; a shorter heartbeat timeout sends more often). */
  heartbeatIntervalMs: 1_000,
  /**
   * A rank without a word for this long is declared lost, unless RINGWIRE_TIMEOUT_MS is longer
   * (see `resolveHeartbeatTimeoutMs()` in env.ts, and RINGWIRE_HEARTBEAT_TIMEOUT_MS).
   */
  heartbeatTimeoutMs: 5_000,
  /**
   * A connection must authenticate within this time or it is closed; a TLS handshake (either
   * end) that has not completed in this time fails too (RINGWIRE_ERR_TIMEOUT on the dialler).
   */
  authTimeoutMs: 5_000,
  /**
   * Connecting to a rendezvous or peer listener, retries included. Also how long a rendezvous
   * request waits for an answer by default, and how long a client may be away from the
   * rendezvous before it reports it 'lost' (it keeps retrying).
   */
  connectTimeoutMs: 30_000,
  /**
   * A client whose rendezvous connection drops reconnects after reconnectMinMs, doubling up to
   * reconnectMaxMs between attempts, until it is closed; then it re-registers as the same member.
   */
  reconnectMinMs: 50,
  reconnectMaxMs: 2_000,
  /**
   * A peer whose connection drops is blamed only if no abort naming another root cause arrives
   * within this long (a peer that failed because of another rank may exit before its abort lands).
   */
  lostGraceMs: 250,
  /**
   * An elastic generation forms once this long has passed since the last membership change
   * (RINGWIRE_ELASTIC_SETTLE_MS), so that workers that lost a peer at once re-join together.
   */
  elasticSettleMs: 1_000,
  /**
   * An elastic job's first generation forms once its initial size (RINGWIRE_SIZE, -np) has
   * joined, or with at least the minimum after this long (workers may start seconds apart).
   */
  elasticStartMs: 10_000,
  /** elastic.run waits this long for a new generation before failing (RINGWIRE_ELASTIC_TIMEOUT_MS). */
  elasticTimeoutMs: 60_000,
  /** A graceful close waits this long for queued data to drain and the peer to answer. */
  closeTimeoutMs: 10_000,
  /** Blocking KV get and barrier when the caller gives no timeout. */
  waitTimeoutMs: 120_000,
  /**
   * Bytes a connection may send before it has authenticated (frame headers included): one hello,
   * whose largest form (a 1024-character job id) is about 3.3 KB, with room to spare. A stranger
   * sending more is dropped at once, so a partial megabyte message cannot be held in memory.
   */
  maxHelloBytes: 8 * 1024,
  /** Largest HTTP request head (request line and headers) before the WebSocket upgrade. */
  maxHeaderBytes: 8 * 1024,
  /**
   * Unauthenticated connections one listener holds at once (TCP accepted, not yet proven the
   * token). One more drops the OLDEST of them: a flood cannot lock out a real peer that connects
   * later, and a real peer finishes its handshake within a round trip, long before it is oldest.
   */
  maxPendingConnections: 256,
  /** A listener logs this many refused connections per interval, then one line counting the rest. */
  refusalLogLimit: 10,
  refusalLogIntervalMs: 10_000,
  /** Largest control message (msgpack) accepted from an authenticated connection. */
  maxControlBytes: 4 * 1024 * 1024,
  /** A collective with no progress for this long fails with RINGWIRE_ERR_TIMEOUT (RINGWIRE_TIMEOUT_MS). */
  opTimeoutMs: 300_000,
  /** A stall report names the missing ranks after this long without progress. */
  stallWarningMs: 60_000,
  /** Largest payload of one peer frame: the unit that is pipelined, reduced and flow-controlled. */
  chunkBytes: 1024 * 1024,
  /** Frames in flight per peer before the sender waits (extra memory per peer = credits x chunk). */
  credits: 4,
  /** Below this many bytes all-reduce and broadcast use the tree algorithms, above it the ring/chain. */
  crossoverBytes: 512 * 1024,
  /**
   * Staging and conversion buffers up to this size are kept for the next op (the caller's thread
   * keeps at most this many bytes of them in all); larger ones are released when their op ends.
   */
  stagingKeepBytes: 64 * 1024 * 1024,
  /** The caller's thread copies into staging buffers in slices this big, yielding in between. */
  stagingSliceBytes: 1024 * 1024,
  /**
   * Every rank sends its counters to the rendezvous this often, over its existing connection
   * (RINGWIRE_METRICS_INTERVAL_MS; 0 turns the reports off). The rendezvous serves them at
   * /metrics and on its live job page, so they are at most this old.
   */
  metricsIntervalMs: 5_000,
  /** Op-time samples one report carries at most (the ops beyond are counted, not sampled). */
  metricsMaxSamples: 512,
  /** The live job page's event stream sends a snapshot this often. */
  dashboardRefreshMs: 1_000,
  /** Bytes/s points the live job page keeps per rank (one per report). */
  dashboardHistory: 60,
} as const;
