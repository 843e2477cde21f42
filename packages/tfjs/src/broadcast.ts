import * as tf from '@tensorflow/tfjs-core';

/** What tf.Optimizer's getWeights and applyGradients take (not exported by tfjs-core's index). */
type NamedTensor = { name: string; tensor: tf.Tensor };

import { type Communicator, type DType, InvalidArgumentError } from 'ringwire';
import { resolveComm } from './context.js';
import { checkLayout } from './layout.js';
import { DistributedOptimizer } from './optimizer.js';

/**
 * A tfjs-layers LayerVariable (model.weights) as far as broadcastVariables uses it: read() returns
 * the tf.Variable that holds its value (declared as a Tensor by tfjs-layers, checked at run time).
 */
export interface LayerVariableLike {
  read(): tf.Tensor;
}

/** A tf.Variable, a tfjs-layers LayerVariable (model.weights), or a NamedTensor holding a Variable. */
export type VariableLike = tf.Variable | LayerVariableLike | NamedTensor;

/** The tf.Variable behind a variable-like (element `i` of a list, for the error message). */
export function toVariable(v: VariableLike, i: number): tf.Variable {
  const candidate =
    v instanceof tf.Variable
      ? v
      : 'read' in v && typeof v.read === 'function'
        ? v.read()
        : 'tensor' in v
          ? v.tensor
          : undefined;
  if (!(candidate instanceof tf.Variable))
    throw new InvalidArgumentError(
      `broadcastVariables: element ${i} is not a tf.Variable (or LayerVariable)`,
    );
  return candidate;
}

const WIRE: Partial<Record<tf.DataType, DType>> = { float32: 'float32', int32: 'int32', bool: 'uint8' };

/**
 * Copies rank `rootRank`'s values of `variables` into every rank's, in place (Horovod's
 * broadcast_variables). One broadcast per dtype over a shared buffer, after a layout check that
 * fails every rank with RINGWIRE_ERR_MISMATCH when the lists differ. Every rank must call it with
 * the same variables in the same order.
 */
export async function broadcastVariables(
  variables: VariableLike[],
  rootRank = 0,
  options: { comm?: Communicator } = {},
): Promise<void> {
  const comm = resolveComm(options.comm, 'broadcastVariables');
  if (!Array.isArray(variables))
    throw new InvalidArgumentError('broadcastVariables: expected an array of variables');
  const vars = variables.map(toVariable);
  vars.forEach((v) => {
    if (!WIRE[v.dtype])
      throw new InvalidArgumentError(
        `broadcastVariables: ${v.name} has dtype ${v.dtype}, which cannot be broadcast`,
      );
  });
  await checkLayout(
    comm,
    'broadcastVariables',
    vars.map((v) => ({ name: v.name, shape: v.shape, dtype: v.dtype })),
    { rootRank },
  );
  const groups = new Map<DType, tf.Variable[]>();
  for (const v of vars) groups.set(WIRE[v.dtype]!, [...(groups.get(WIRE[v.dtype]!) ?? []), v]);
  for (const [dtype, group] of groups) {
    const total = group.reduce((n, v) => n + v.size, 0);
    const buf = comm.allocate(dtype, total) as Float32Array | Int32Array | Uint8Array;
    if (comm.rank === rootRank) {
      let off = 0;
      for (const v of group) {
        buf.set((await v.data()) as ArrayLike<number>, off);
        off += v.size;
      }
    }
    await comm.broadcast(buf, rootRank);
    if (comm.rank === rootRank) continue;
    let off = 0;
    for (const v of group) {
      // A copy: the variable must not keep a view of the shared buffer.
      const t = tf.tensor(buf.slice(off, off + v.size), v.shape, v.dtype);
      v.assign(t);
      t.dispose();
      off += v.size;
    }
  }
}

/**
 * Broadcasts an optimizer's state (its slot variables from getWeights(), and the iteration count)
 * from `rootRank`. Optimizers whose getWeights() is not implemented are skipped on every rank.
 */
export async function broadcastOptimizerState(
  optimizer: tf.Optimizer,
  rootRank = 0,
  options: { comm?: Communicator } = {},
): Promise<void> {
  const comm = resolveComm(options.comm, 'broadcastOptimizerState');
  const inner = optimizer instanceof DistributedOptimizer ? optimizer.optimizer : optimizer;
  let weights: NamedTensor[];
  try {
    weights = await inner.getWeights();
  } catch {
    return;
  }
  const vars = weights.map((w) => w.tensor).filter((t): t is tf.Variable => t instanceof tf.Variable);
  tf.dispose(weights.map((w) => w.tensor).filter((t) => !(t instanceof tf.Variable)));
  await broadcastVariables(vars, rootRank, { comm });
  const it = new Float64Array([inner.iterations]);
  await comm.broadcast(it, rootRank);
  (inner as unknown as { iterations_: number }).iterations_ = it[0];
}
