import { randomBytes } from 'node:crypto';
import { readdirSync, statfsSync, unlinkSync } from 'node:fs';
import { kernelsInfo, nativeMapShared } from '../kernels/index.js';

/**
 * Shared memory for peers on the same host, as NCCL's and Open MPI's shared-memory transports do.
 * The sender of each ordered pair creates a file in /dev/shm holding one slot per credit, the
 * receiver maps it too, and data frames then carry only their header on the WebSocket: the
 * payload is copied into slot `frame number % credits` and read from there. Credits already
 * guarantee that a slot is free when a frame is sent, and the socket write and read order the
 * memory accesses. Over loopback TCP every byte costs two kernel copies plus the TCP stack, which
 * is most of the CPU time of a ring when ranks outnumber cores; here it costs one memcpy.
 *
 * Used only when both ends see the same address on their socket (same host and network
 * namespace), the native addon is loaded and the `sharedMemory` option (RINGWIRE_SHM) is on. The
 * file is unlinked as soon as the receiver has answered, so nothing is left behind when a process
 * dies later; one killed before that leaves its file, which its launcher removes (removeRegionsOf). Its pages are reserved up front (credits x chunkBytes per ordered pair, so n(n-1) x
 * 4 MiB per host by default); once one does not fit in /dev/shm, this rank's later pairs use TCP
 * too, with one warning.
 */
export interface SharedRegion {
  /** What the receiver needs to map it: sent in the handshake's welcome. */
  offer: { path: string; nonce: Uint8Array };
  slots: Buffer[];
}

/** Slots start on a page boundary after the nonce the receiver checks. */
const SLOTS_AT = 4096;
const PATH = /^\/dev\/shm\/ringwire-[0-9]+-[0-9a-f]{16}$/;

export interface SharedMemoryInfo {
  available: boolean;
  /** Why not (set only when available is false). */
  reason?: string;
  /** Free bytes in /dev/shm (set only when available is true). */
  freeBytes?: number;
}

/** Whether this process can share memory with same-host peers: Linux, the native addon, /dev/shm. */
export function sharedMemoryInfo(): SharedMemoryInfo {
  if (process.platform !== 'linux') return { available: false, reason: 'Linux only' };
  if (nativeMapShared() === null)
    return {
      available: false,
      reason: kernelsInfo().reason ?? 'this @ringwire/native build has no mapShared',
    };
  try {
    const fs = statfsSync('/dev/shm');
    return { available: true, freeBytes: fs.bavail * fs.bsize };
  } catch (err) {
    return { available: false, reason: (err as Error).message };
  }
}

/** Both ends of a connection see the same address: same host and network namespace. */
export function sameHost(socket: { localAddress?: string; remoteAddress?: string }): boolean {
  return socket.localAddress !== undefined && socket.localAddress === socket.remoteAddress;
}

function slotsOf(buf: ArrayBuffer, slots: number, slotBytes: number): Buffer[] {
  return Array.from({ length: slots }, (_, i) => Buffer.from(buf, SLOTS_AT + i * slotBytes, slotBytes));
}

/** Creates this sender's region for one peer; throws when /dev/shm cannot hold it. */
export function createRegion(slots: number, slotBytes: number): SharedRegion {
  const path = `/dev/shm/ringwire-${process.pid}-${randomBytes(8).toString('hex')}`;
  const buf = nativeMapShared()!(path, SLOTS_AT + slots * slotBytes, true);
  const nonce = randomBytes(32);
  nonce.copy(Buffer.from(buf, 0, 32));
  return { offer: { path, nonce }, slots: slotsOf(buf, slots, slotBytes) };
}

/** Removes the region's file (the mappings stay valid); safe to call twice. */
export function unlinkRegion(region: SharedRegion): void {
  try {
    unlinkSync(region.offer.path);
  } catch {
    // already gone
  }
}

/** Maps a peer's offered region, checking that it is the file the peer wrote; throws if not. */
export function openRegion(offer: unknown, slots: number, slotBytes: number): Buffer[] {
  const o = offer as SharedRegion['offer'] | undefined;
  if (
    typeof o?.path !== 'string' ||
    !PATH.test(o.path) ||
    !(o.nonce instanceof Uint8Array) ||
    o.nonce.length !== 32
  )
    throw new Error('malformed shared-memory offer');
  const buf = nativeMapShared()!(o.path, SLOTS_AT + slots * slotBytes, false);
  if (!Buffer.from(buf, 0, 32).equals(o.nonce)) throw new Error(`${o.path} does not hold the offered nonce`);
  return slotsOf(buf, slots, slotBytes);
}

/**
 * Removes the region files process `pid` created and still had (it was killed between creating
 * one and its peer's answer); returns how many. For a launcher, once that process is gone: the
 * files are named by their creator's pid, so no other process's are touched.
 */
export function removeRegionsOf(pid: number): number {
  let names: string[];
  try {
    names = readdirSync('/dev/shm');
  } catch {
    return 0; // not Linux, or no /dev/shm
  }
  let removed = 0;
  for (const name of names) {
    const path = `/dev/shm/${name}`;
    if (!name.startsWith(`ringwire-${pid}-`) || !PATH.test(path)) continue;
    try {
      unlinkSync(path);
      removed++;
    } catch {
      // removed meanwhile
    }
  }
  return removed;
}
