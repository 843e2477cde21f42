/**
 * Every error ringwire raises. Each class carries a stable `code`; match on the code, not the
 * message. This is the only place error codes are defined: `ringwire` re-exports it.
 */
export const ErrorCode = {
  INVALID_ARG: 'RINGWIRE_ERR_INVALID_ARG',
  PEER_LOST: 'RINGWIRE_ERR_PEER_LOST',
  TIMEOUT: 'RINGWIRE_ERR_TIMEOUT',
  MISMATCH: 'RINGWIRE_ERR_MISMATCH',
  AUTH: 'RINGWIRE_ERR_AUTH',
  PROTOCOL: 'RINGWIRE_ERR_PROTOCOL',
  RENDEZVOUS: 'RINGWIRE_ERR_RENDEZVOUS',
  ABORTED: 'RINGWIRE_ERR_ABORTED',
  CLOSED: 'RINGWIRE_ERR_CLOSED',
  MEMBERSHIP_CHANGED: 'RINGWIRE_ERR_MEMBERSHIP_CHANGED',
  CHECKPOINT: 'RINGWIRE_ERR_CHECKPOINT',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorDetails {
  /** The rank the error is about (the lost peer, the late or mismatching rank). */
  rank?: number;
  /** Ranks that had not arrived at a collective (timeouts and stall reports). */
  ranks?: number[];
  cause?: unknown;
}

/** Base of every ringwire error; `code` is stable, the message is for people. */
export class RingwireError extends Error {
  readonly code: ErrorCode;
  readonly rank?: number;
  readonly ranks?: number[];
  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'RingwireError';
    this.code = code;
    if (details.rank !== undefined) this.rank = details.rank;
    if (details.ranks !== undefined) this.ranks = details.ranks;
  }

  /** A plain object that survives structured clone and msgpack; see `fromJSON`. */
  toJSON(): { code: ErrorCode; message: string; rank?: number; ranks?: number[] } {
    return { code: this.code, message: this.message, rank: this.rank, ranks: this.ranks };
  }

  /** Rebuilds the error of the right class from `toJSON()` output (across threads or the network). */
  static fromJSON(o: { code: string; message: string; rank?: number; ranks?: number[] }): RingwireError {
    const details = { rank: o.rank ?? undefined, ranks: o.ranks ?? undefined };
    const Ctor = byCode.get(o.code as ErrorCode);
    return Ctor
      ? new Ctor(String(o.message), details)
      : new RingwireError(ErrorCode.PROTOCOL, String(o.message), details);
  }
}

/** RINGWIRE_ERR_INVALID_ARG: bad input (types, sizes, ranks, options, environment). */
export class InvalidArgumentError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.INVALID_ARG, message, details);
    this.name = 'InvalidArgumentError';
  }
}
/** RINGWIRE_ERR_PEER_LOST: a peer died or its connection dropped; `rank` names it. */
export class PeerLostError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.PEER_LOST, message, details);
    this.name = 'PeerLostError';
  }
}
/** RINGWIRE_ERR_TIMEOUT: no progress within the timeout; `ranks` are those not arrived. */
export class TimeoutError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.TIMEOUT, message, details);
    this.name = 'TimeoutError';
  }
}
/** RINGWIRE_ERR_MISMATCH: ranks issued different collectives; the message has both. */
export class MismatchError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.MISMATCH, message, details);
    this.name = 'MismatchError';
  }
}
/** RINGWIRE_ERR_AUTH: a connection could not prove it holds the job token. */
export class AuthError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.AUTH, message, details);
    this.name = 'AuthError';
  }
}
/** RINGWIRE_ERR_PROTOCOL: a malformed or unexpected message or frame. */
export class ProtocolError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.PROTOCOL, message, details);
    this.name = 'ProtocolError';
  }
}
/** RINGWIRE_ERR_RENDEZVOUS: the rendezvous is unreachable or refused a request. */
export class RendezvousError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.RENDEZVOUS, message, details);
    this.name = 'RendezvousError';
  }
}
/** RINGWIRE_ERR_ABORTED: the job failed elsewhere; this op was abandoned. */
export class AbortedError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.ABORTED, message, details);
    this.name = 'AbortedError';
  }
}
/** RINGWIRE_ERR_CLOSED: the communicator was closed. */
export class ClosedError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.CLOSED, message, details);
    this.name = 'ClosedError';
  }
}
/**
 * RINGWIRE_ERR_MEMBERSHIP_CHANGED: an elastic job's membership is about to change (workers wait
 * to join); thrown by an elastic state's commit() and caught by elastic.run, which re-forms.
 */
export class MembershipChangedError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.MEMBERSHIP_CHANGED, message, details);
    this.name = 'MembershipChangedError';
  }
}

/** RINGWIRE_ERR_CHECKPOINT: a checkpoint directory or file cannot be read or written; the message says which and why. */
export class CheckpointError extends RingwireError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.CHECKPOINT, message, details);
    this.name = 'CheckpointError';
  }
}

/**
 * A command line that cannot run as given (a bad flag or value): the CLIs print it with their
 * usage and exit 2. An InvalidArgumentError, so code that catches those catches it too.
 */
export class UsageError extends InvalidArgumentError {
  constructor(message: string, details?: ErrorDetails) {
    super(message, details);
    this.name = 'UsageError';
  }
}

const byCode = new Map<ErrorCode, new (message: string, details?: ErrorDetails) => RingwireError>([
  [ErrorCode.INVALID_ARG, InvalidArgumentError],
  [ErrorCode.PEER_LOST, PeerLostError],
  [ErrorCode.TIMEOUT, TimeoutError],
  [ErrorCode.MISMATCH, MismatchError],
  [ErrorCode.AUTH, AuthError],
  [ErrorCode.PROTOCOL, ProtocolError],
  [ErrorCode.RENDEZVOUS, RendezvousError],
  [ErrorCode.ABORTED, AbortedError],
  [ErrorCode.CLOSED, ClosedError],
  [ErrorCode.MEMBERSHIP_CHANGED, MembershipChangedError],
  [ErrorCode.CHECKPOINT, CheckpointError],
]);

/** Reads an error's code whatever its origin; non-ringwire errors have none. */
export function errorCode(err: unknown): ErrorCode | undefined {
  return err instanceof RingwireError ? err.code : undefined;
}
