import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError, MismatchError } from 'ringwire';
import { toVariable, type VariableLike } from './broadcast.js';

type DType = 'float32' | 'int32' | 'bool';

/** One tensor of a snapshot: where it lives in the model or optimizer, and in the bytes. */
export interface SnapshotEntry {
  /** A model weight (model.weights[index]), an optimizer variable (optimizer[key]) or slot (optimizer[key][index]). */
  kind: 'weight' | 'var' | 'slot';
  key: string;
  index: number;
  /** The variable's name (a slot's originalName); informative, except for slots it recreates. */
  name: string;
  shape: number[];
  dtype: DType;
  /** Byte offset in the snapshot's data (4-byte aligned). */
  offset: number;
}

/** What a snapshot holds besides its bytes: JSON, broadcast and written in checkpoint headers. */
export interface SnapshotLayout {
  entries: SnapshotEntry[];
  /** Each slot list's length (lists grow lazily: a longer one is cut back on load). */
  lists: Record<string, number>;
  /** The wrapped optimizer's class name (getClassName()). */
  optimizer: string;
  /** The optimizer's iteration count. */
  iterations: number;
  bytes: number;
}

/** The model weights and the optimizer's state, copied into host memory. */
export interface Snapshot {
  layout: SnapshotLayout;
  data: Uint8Array;
}

/** What a snapshot is taken of. */
export interface Trainable {
  model: { weights: VariableLike[] };
  /** The wrapped (inner) optimizer: a DistributedOptimizer's `optimizer`. */
  optimizer: tf.Optimizer;
}

/** A tfjs optimizer's per-variable slot: { originalName, variable } as its built-in optimizers keep them. */
type Slot = { originalName: string; variable: tf.Variable } | null | undefined;

const BYTES: Record<DType, number> = { float32: 4, int32: 4, bool: 1 };
const isSlot = (s: unknown): s is Slot =>
  s == null || (typeof s === 'object' && (s as { variable?: unknown }).variable instanceof tf.Variable);
const isSlotList = (v: unknown): v is Slot[] => Array.isArray(v) && v.every(isSlot);
const fields = (o: tf.Optimizer) => o as unknown as Record<string, unknown>;

/**
 * The tensors a snapshot holds, live: every model weight (trainable or not), then the optimizer's
 * state: each tf.Variable it holds (e.g. Adam's accBeta1/accBeta2) and each list of slots (Adam's
 * first and second moments, Momentum's accumulations...). That is what getWeights() returns, plus
 * the values setWeights() would recompute (not always bit for bit), so a restore is exact.
 */
function liveTensors({ model, optimizer }: Trainable) {
  const items: { entry: Omit<SnapshotEntry, 'offset'>; tensor: tf.Variable }[] = [];
  const add = (kind: SnapshotEntry['kind'], key: string, index: number, name: string, v: tf.Variable) => {
    if (!(v.dtype in BYTES))
      throw new InvalidArgumentError(`TfjsState: ${name} has dtype ${v.dtype}, which a snapshot cannot hold`);
    items.push({
      entry: { kind, key, index, name, shape: v.shape.slice(), dtype: v.dtype as DType },
      tensor: v,
    });
  };
  model.weights.forEach((w, i) => {
    const v = toVariable(w, i);
    add('weight', '', i, v.name, v);
  });
  const lists: Record<string, number> = {};
  for (const [key, v] of Object.entries(fields(optimizer))) {
    if (v instanceof tf.Variable) add('var', key, 0, v.name, v);
    else if (isSlotList(v)) {
      lists[key] = v.length;
      v.forEach((s, i) => s && add('slot', key, i, s.originalName, s.variable));
    }
  }
  return { items, lists };
}

/**
 * Copies the model's weights and the optimizer's state into host memory: one byte buffer (`reuse`
 * when it has the right size, else a new one). Reads with `await data()`, so any backend works.
 */
export async function takeSnapshot(t: Trainable, reuse?: Uint8Array): Promise<Snapshot> {
  const { items, lists } = liveTensors(t);
  let bytes = 0;
  const entries = items.map(({ entry }) => {
    const e = { ...entry, offset: bytes };
    bytes += Math.ceil((sizeOf(e.shape) * BYTES[e.dtype]) / 4) * 4;
    return e;
  });
  const data = reuse?.byteLength === bytes ? reuse : new Uint8Array(bytes);
  for (const [i, { tensor }] of items.entries()) {
    const d = (await tensor.data()) as Float32Array | Int32Array | Uint8Array;
    data.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), entries[i].offset);
  }
  const layout = {
    entries,
    lists,
    optimizer: t.optimizer.getClassName(),
    iterations: t.optimizer.iterations,
    bytes,
  };
  return { layout, data };
}

/**
 * Puts a snapshot back into the model and the optimizer, in place and synchronously: weights and
 * optimizer variables are assigned (from copies: a variable never keeps a view of the snapshot),
 * missing slots are created, slots the snapshot did not have yet are disposed. A model or
 * optimizer of another layout fails with RINGWIRE_ERR_MISMATCH and changes nothing.
 */
export function applySnapshot(t: Trainable, { layout, data }: Snapshot): void {
  const { model, optimizer } = t;
  const opt = fields(optimizer);
  const weights = model.weights.map(toVariable);
  const saved = layout.entries.filter((e) => e.kind === 'weight');
  const desc = (s: { shape: number[]; dtype: string }[]) => JSON.stringify(s.map((e) => [e.shape, e.dtype]));
  if (desc(saved) !== desc(weights))
    throw new MismatchError(
      `TfjsState: the model's weights ${desc(weights)} differ from the saved state's ${desc(saved)}`,
    );
  if (layout.optimizer !== optimizer.getClassName())
    throw new MismatchError(
      `TfjsState: the optimizer is ${optimizer.getClassName()} but the saved state is of ${layout.optimizer}`,
    );
  for (const e of layout.entries) {
    if (e.kind === 'var' && !(opt[e.key] instanceof tf.Variable))
      throw new MismatchError(`TfjsState: the optimizer has no variable ${e.key}`);
    if (e.kind === 'slot' && !isSlotList(opt[e.key]))
      throw new MismatchError(`TfjsState: the optimizer has no slot list ${e.key}`);
  }
  const tensor = (e: SnapshotEntry) => {
    const n = sizeOf(e.shape);
    const at = data.byteOffset + e.offset;
    const copy =
      e.dtype === 'float32'
        ? new Float32Array(data.buffer.slice(at, at + n * 4))
        : e.dtype === 'int32'
          ? new Int32Array(data.buffer.slice(at, at + n * 4))
          : new Uint8Array(data.buffer.slice(at, at + n));
    return tf.tensor(copy, e.shape, e.dtype);
  };
  const assign = (v: tf.Variable, e: SnapshotEntry) => {
    const value = tensor(e);
    v.assign(value);
    value.dispose();
  };
  for (const [key, length] of Object.entries(layout.lists)) {
    const list = opt[key];
    if (!isSlotList(list)) continue; // checked above when the snapshot has slots in it
    for (let i = length; i < list.length; i++) list[i]?.variable.dispose();
    list.length = Math.min(list.length, length);
  }
  for (const e of layout.entries) {
    if (e.kind === 'weight') assign(weights[e.index], e);
    else if (e.kind === 'var') assign(opt[e.key] as tf.Variable, e);
    else {
      const list = opt[e.key] as Slot[];
      const cur = list[e.index];
      if (cur && sameShape(cur.variable.shape, e.shape) && cur.variable.dtype === e.dtype)
        assign(cur.variable, e);
      else {
        cur?.variable.dispose();
        const value = tensor(e);
        list[e.index] = { originalName: e.name, variable: tf.variable(value, false) };
        value.dispose();
      }
    }
  }
  (optimizer as unknown as { iterations_: number }).iterations_ = layout.iterations;
}

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
