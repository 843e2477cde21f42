import type { DType, ReduceOp } from '@ringwire/common';
import { DTYPE_NAMES, ProtocolError, REDUCE_OPS } from '@ringwire/common';

/**
 * The peer wire format, all of it. A peer connection carries binary WebSocket messages of two
 * kinds, told apart by their first four bytes:
 *
 *  - frames: a fixed 48-byte little-endian header, then `length` payload bytes.
 *      0 u32 magic 'RWF1'   4 u8 version   5 u8 type (DATA | CREDIT)   6 u8 kind   7 u8 dtype
 *      8 u8 op   9 u8 flags   10 u16 step   12 u32 generation   16 u32 seq   20 u32 root
 *      24 f64 count   32 f64 byte offset   40 u32 length (payload bytes, or credits granted)
 *      44 u32 descriptor hash (kind, dtype, op, root, count and the grouped layout)
 *    The full descriptor rides in every frame so a mismatch can name both sides exactly.
 *    Flag 1 (SHARED): the payload is not on the wire but in the connection's next shared-memory
 *    slot (shared.ts); `length` still gives its size.
 *  - control messages: msgpack maps (handshake, abort, status query), never tensors.
 */
export const MAGIC = 0x31465752; // 'RWF1' read little-endian
export const VERSION = 1;
export const HEADER_BYTES = 48;
export const FrameType = { DATA: 1, CREDIT: 2 } as const;
const SHARED = 1;

export const KINDS = ['allreduce', 'broadcast', 'allgather', 'reducescatter', 'barrier', 'counts'] as const;
export type Kind = (typeof KINDS)[number];

/** What every rank must agree on for one collective. */
export interface Descriptor {
  kind: Kind;
  dtype: DType;
  op: ReduceOp;
  root: number;
  /** Elements (allgather: 0, lengths may differ per rank). */
  count: number;
  /** Hash of how grouped arrays are laid out in the fused buffer (0 when not grouped). */
  layout: number;
}

export interface FrameHeader {
  type: number;
  desc: Descriptor;
  hash: number;
  step: number;
  generation: number;
  seq: number;
  offset: number;
  length: number;
  /** The payload is in shared memory (flag SHARED), not behind the header. */
  shared?: boolean;
}

/** A descriptor in words, for error messages (kind, dtype, count, op, root). */
export function describe(d: Descriptor): string {
  const parts = [d.dtype, `count=${d.count}`];
  if (d.kind === 'allreduce' || d.kind === 'reducescatter') parts.push(`op=${d.op}`);
  if (d.kind === 'broadcast') parts.push(`root=${d.root}`);
  if (d.layout) parts.push(`layout=${d.layout.toString(16)}`);
  return d.kind === 'barrier' ? 'barrier()' : `${d.kind}(${parts.join(', ')})`;
}

/** FNV-1a over the descriptor's fields; the same on every rank for the same call. */
export function descriptorHash(d: Descriptor): number {
  let h = 0x811c9dc5;
  const mix = (v: number) => {
    for (let i = 0; i < 8; i++) {
      h ^= (v / 2 ** (8 * i)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  };
  mix(KINDS.indexOf(d.kind));
  mix(DTYPE_NAMES.indexOf(d.dtype));
  mix(REDUCE_OPS.indexOf(d.op));
  mix(d.root);
  mix(d.count);
  mix(d.layout);
  return h >>> 0;
}

/** Writes a header into `into` (HEADER_BYTES long); reused per connection to avoid allocation. */
export function writeHeader(into: Buffer, h: FrameHeader): Buffer {
  into.writeUInt32LE(MAGIC, 0);
  into[4] = VERSION;
  into[5] = h.type;
  into[6] = KINDS.indexOf(h.desc.kind);
  into[7] = DTYPE_NAMES.indexOf(h.desc.dtype);
  into[8] = REDUCE_OPS.indexOf(h.desc.op);
  into[9] = h.shared ? SHARED : 0;
  into.writeUInt16LE(h.step, 10);
  into.writeUInt32LE(h.generation, 12);
  into.writeUInt32LE(h.seq, 16);
  into.writeUInt32LE(h.desc.root, 20);
  into.writeDoubleLE(h.desc.count, 24);
  into.writeDoubleLE(h.offset, 32);
  into.writeUInt32LE(h.length, 40);
  into.writeUInt32LE(h.hash, 44);
  return into;
}

/** Whether a message is a binary frame (its magic) rather than a msgpack control message. */
export function isFrame(data: Buffer): boolean {
  return data.length >= 4 && data.readUInt32LE(0) === MAGIC;
}

/** Parses and bounds-checks a frame; anything inconsistent is a protocol error. */
export function readHeader(
  data: Buffer,
  maxPayload: number,
  payloadBytes = data.length - HEADER_BYTES,
): FrameHeader {
  if (data.length < HEADER_BYTES)
    throw new ProtocolError(`frame of ${data.length} bytes is shorter than its header`);
  if (data[4] !== VERSION) throw new ProtocolError(`frame version ${data[4]}, expected ${VERSION}`);
  const type = data[5];
  const kind = KINDS[data[6]];
  const dtype = DTYPE_NAMES[data[7]];
  const op = REDUCE_OPS[data[8]];
  if (type !== FrameType.DATA && type !== FrameType.CREDIT)
    throw new ProtocolError(`unknown frame type ${type}`);
  if (!kind || !dtype || !op) throw new ProtocolError('frame descriptor has unknown kind, dtype or op');
  const flags = data[9];
  const shared = flags === SHARED;
  if (flags !== 0 && !(shared && type === FrameType.DATA))
    throw new ProtocolError(`frame flags ${flags} are not valid on a frame of type ${type}`);
  const length = data.readUInt32LE(40);
  if (
    type === FrameType.DATA &&
    ((shared ? payloadBytes !== 0 : length !== payloadBytes) || length > maxPayload)
  ) {
    throw new ProtocolError(
      `frame says ${length} payload bytes${shared ? ' in shared memory' : ''} but carries ${payloadBytes} (limit ${maxPayload})`,
    );
  }
  const count = data.readDoubleLE(24);
  const offset = data.readDoubleLE(32);
  if (!Number.isSafeInteger(count) || count < 0 || !Number.isSafeInteger(offset) || offset < 0)
    throw new ProtocolError('frame count or offset is not a non-negative integer');
  return {
    type,
    desc: { kind, dtype, op, root: data.readUInt32LE(20), count, layout: 0 },
    hash: data.readUInt32LE(44),
    step: data.readUInt16LE(10),
    generation: data.readUInt32LE(12),
    seq: data.readUInt32LE(16),
    offset,
    length,
    shared,
  };
}
