import { ErrorCode, MembershipChangedError, RingwireError } from '@ringwire/common';
import { type Communicator, init } from '../communicator.js';
import type { InitOptions } from '../options.js';
import type { State } from './state.js';

/**
 * Runs `fn` in an elastic job until it returns: joins the job as init() does (the job is elastic
 * when RINGWIRE_MIN_SIZE/MAX_SIZE or `options.elastic` say so), syncs the state from rank 0, and
 * calls fn(comm, state). When a collective fails because the membership changed (a peer was
 * lost, or commit() saw workers waiting), it restores the last commit, closes the communicator,
 * joins the next generation, syncs, runs the onReset callbacks and calls fn again. Any other
 * error (MISMATCH, INVALID_ARG, AUTH, the function's own) propagates at once. When no
 * generation forms within RINGWIRE_ELASTIC_TIMEOUT_MS (e.g. fewer than the minimum of workers
 * remain), init fails with a TimeoutError saying so, and run rejects with it.
 */
export async function run<S extends State, R>(
  state: S,
  fn: (comm: Communicator, state: S) => Promise<R>,
  options: InitOptions = {},
): Promise<R> {
  for (let generation = 0; ; generation++) {
    const comm = await init(options);
    try {
      await state.sync(comm, 0);
      if (generation > 0) await state.runReset(comm);
      const result = await fn(comm, state);
      await comm.close();
      return result;
    } catch (err) {
      await comm.close().catch(() => {});
      if (!isMembershipChange(err, comm)) throw err;
      state.restore();
    }
  }
}

/** Whether `err` means "the membership changed": re-form rather than fail. */
function isMembershipChange(err: unknown, comm: Communicator): boolean {
  if (err instanceof MembershipChangedError) return true;
  if (!(err instanceof RingwireError)) return false;
  if (err.code === ErrorCode.PEER_LOST) return true;
  // A later op of a communicator that failed with PEER_LOST gets ABORTED naming it.
  return err.code === ErrorCode.ABORTED && comm.failureCause?.code === ErrorCode.PEER_LOST;
}
