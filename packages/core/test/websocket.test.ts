import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { DataSocket } from '../src/transport/data-socket.js';
import { createRegion, openRegion, sharedMemoryInfo, unlinkRegion } from '../src/transport/shared-memory.js';
import { FrameType, HEADER_BYTES, writeHeader } from '../src/wire.js';

// The receiving end of peer connections against a real `ws` server that sends hostile frames.
let wss: WebSocketServer | undefined;
afterEach(
  () =>
    new Promise<void>((r) => (wss ? (wss.clients.forEach((c) => c.terminate()), wss.close(() => r())) : r())),
);

async function pair(
  slots = 2,
  maxPayload = 1024,
): Promise<{ ds: DataSocket; peer: WebSocket; raw: import('node:net').Socket }> {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss!.once('listening', r));
  const port = (wss.address() as { port: number }).port;
  const peer = new Promise<WebSocket>((r) => wss!.once('connection', r));
  const ds = await DataSocket.connect('127.0.0.1', port, {
    maxPayload,
    slots,
    readBufferBytes: 4096,
    timeoutMs: 5000,
  });
  const ws = await peer;
  return { ds, peer: ws, raw: (ws as unknown as { _socket: import('node:net').Socket })._socket };
}

const desc = { kind: 'allreduce', dtype: 'float32', op: 'sum', root: 0, count: 10, layout: 0 } as const;
function dataFrame(len: number, fill = 7): Buffer {
  const b = Buffer.alloc(HEADER_BYTES + len, fill);
  writeHeader(b, {
    type: FrameType.DATA,
    desc,
    hash: 1,
    step: 0,
    generation: 1,
    seq: 1,
    offset: 0,
    length: len,
  });
  return b;
}
/** A header whose `len` payload bytes wait in the receiver's next shared slot. */
const sharedFrame = (len: number) =>
  writeHeader(Buffer.alloc(HEADER_BYTES), {
    type: FrameType.DATA,
    desc,
    hash: 1,
    step: 0,
    generation: 1,
    seq: 1,
    offset: 0,
    length: len,
    shared: true,
  });

describe('DataSocket (the receiving end of a peer connection)', () => {
  it('delivers data frames into its slots and control messages whole, across tiny reads', async () => {
    const { ds, peer } = await pair(2, 100_000);
    const frames: Buffer[] = [];
    const controls: Buffer[] = [];
    ds.on('frame', (_h, p: Buffer) => (frames.push(Buffer.from(p)), ds.release()));
    ds.on('control', (c: Buffer) => controls.push(c));
    ds.start();
    peer.send(dataFrame(70_000, 3)); // spans many 4 KiB reads
    peer.send(Buffer.from('a control message, not a frame'));
    peer.send(dataFrame(0));
    await new Promise((r) => setTimeout(r, 200));
    expect(frames.map((f) => f.length)).toEqual([70_000, 0]);
    expect(frames[0].every((v) => v === 3)).toBe(true);
    expect(controls.map(String)).toEqual(['a control message, not a frame']);
  });

  it('reads shared-memory frames from slot (frame number % slots), or copies them into place', async () => {
    const { ds, peer } = await pair(2, 1024);
    // Real shared memory needs two processes (collectives.test.ts); here the slots are plain buffers.
    ds.shared = [Buffer.alloc(1024, 1), Buffer.alloc(1024, 2)];
    const placed = new Uint8Array(8);
    ds.placer = (h) => (h.length === 8 ? placed : undefined);
    const frames: [boolean, number[]][] = [];
    ds.on(
      'frame',
      (_h, p: Uint8Array) => (frames.push([p.buffer === placed.buffer, [...p.subarray(0, 3)]]), ds.release()),
    );
    ds.start();
    peer.send(sharedFrame(5)); // slot 0
    peer.send(dataFrame(3, 9)); // slot 1 on the wire
    peer.send(sharedFrame(8)); // slot 0 again, placed
    peer.send(sharedFrame(0)); // slot 1, empty
    await new Promise((r) => setTimeout(r, 200));
    expect(frames).toEqual([
      [false, [1, 1, 1]],
      [false, [9, 9, 9]],
      [true, [1, 1, 1]],
      [false, []],
    ]);
    expect([...placed]).toEqual(Array(8).fill(1));
  });

  const hostile: [string, (peer: WebSocket, raw: import('node:net').Socket) => void, RegExp][] = [
    ['an oversized frame', (p) => p.send(dataFrame(2000)), /exceeds the bound/],
    [
      'more frames than its credit',
      (p) => (p.send(dataFrame(10)), p.send(dataFrame(10)), p.send(dataFrame(10))),
      /more frames than its credit/,
    ],
    [
      'a masked server frame',
      (_p, raw) => raw.write(Buffer.from([0x82, 0x82, 1, 2, 3, 4, 5, 6])),
      /server frame is masked/,
    ],
    [
      'a fragmented message',
      (p) => (p.send(Buffer.alloc(10), { fin: false }), p.send(Buffer.alloc(10), { fin: true })),
      /fragmented/,
    ],
    [
      'a frame whose length disagrees with its header',
      (_p, raw) => {
        const f = dataFrame(10);
        f.writeUInt32LE(999, 40);
        raw.write(Buffer.concat([Buffer.from([0x82, f.length]), f]));
      },
      /says 999 payload bytes but carries 10/,
    ],
    [
      'a shared-memory frame on a connection without shared memory',
      (p) => p.send(sharedFrame(10)),
      /shared-memory frame on a connection without shared memory/,
    ],
    [
      'a shared-memory frame with bytes on the wire',
      (p) => p.send(Buffer.concat([sharedFrame(10), Buffer.alloc(10)])),
      /says 10 payload bytes in shared memory but carries 10/,
    ],
    [
      'unknown frame flags',
      (p) => {
        const f = dataFrame(4);
        f[9] = 2;
        p.send(f);
      },
      /frame flags 2 are not valid/,
    ],
  ];
  for (const [what, send, re] of hostile) {
    it(`closes the connection with a protocol error on ${what}`, async () => {
      const { ds, peer, raw } = await pair(2);
      const err = new Promise<Error & { code: string }>((r) => ds.once('error', r));
      const closed = new Promise((r) => ds.once('close', r));
      ds.on('frame', () => {}); // never released: credit runs out
      ds.start();
      send(peer, raw);
      const e = await err;
      expect(e.code).toBe('RINGWIRE_ERR_PROTOCOL');
      expect(e.message).toMatch(re);
      await closed;
      expect(ds.open).toBe(false);
    });
  }
});

describe('shared-memory regions (the same-host payload slots)', () => {
  it('map the same memory on both ends, check the nonce and path, and leave no file once unlinked', () => {
    if (!sharedMemoryInfo().available) return void expect(process.env.RINGWIRE_NO_NATIVE).toBe('1');
    const region = createRegion(3, 4096);
    try {
      const slots = openRegion(region.offer, 3, 4096);
      region.slots[2].fill(42, 0, 10);
      expect([...slots[2].subarray(0, 11)]).toEqual([...Array(10).fill(42), 0]);
      slots[0][5] = 9; // and back
      expect(region.slots[0][5]).toBe(9);
      expect(() => openRegion({ ...region.offer, nonce: new Uint8Array(32) }, 3, 4096)).toThrow(
        /does not hold the offered nonce/,
      );
      expect(() => openRegion(region.offer, 4, 4096)).toThrow(/is not a 20480-byte file of this user/);
      expect(() => openRegion({ ...region.offer, path: '/etc/passwd' }, 3, 4096)).toThrow(
        /malformed shared-memory offer/,
      );
      expect(() => openRegion({ path: region.offer.path }, 3, 4096)).toThrow(/malformed shared-memory offer/);
    } finally {
      unlinkRegion(region);
    }
    expect(existsSync(region.offer.path)).toBe(false);
    expect(region.slots[2][0]).toBe(42); // the mapping outlives the file
    unlinkRegion(region); // twice is fine
  });
});
