import { type Communicator, type InitOptions, InvalidArgumentError, init as initComm } from 'ringwire';

let defaultComm: Communicator | undefined;

/**
 * Joins the job (ringwire's `init()`, from the RINGWIRE_* environment that `ringrun` sets) and
 * makes the communicator the default of every @ringwire/tfjs API, as `hvd.init()` does.
 */
export async function init(options?: InitOptions): Promise<Communicator> {
  defaultComm = await initComm(options);
  return defaultComm;
}

/** Makes `comm` the default communicator (or clears it with undefined). */
export function setCommunicator(comm: Communicator | undefined): void {
  defaultComm = comm;
}

/** The communicator passed in options, else the default one. */
export function resolveComm(comm: Communicator | undefined, what: string): Communicator {
  const c = comm ?? defaultComm;
  if (!c)
    throw new InvalidArgumentError(
      `${what}: no communicator: pass { comm } or call init() from @ringwire/tfjs first`,
    );
  return c;
}
