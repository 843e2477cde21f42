import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import {
  AuthError,
  ProtocolError,
  TimeoutError,
  type TlsMaterial,
  tlsClientOptions,
  tlsRefusal,
} from '@ringwire/common';
import { copyBytes } from '../kernels/index.js';
import { type FrameHeader, HEADER_BYTES, MAGIC, readHeader } from '../wire.js';
import { sameHost } from './shared-memory.js';
import type { Placer } from './types.js';

/** DataSocket's events: a data frame in its slot, a control message, a protocol error, the close. */
export interface DataSocketEvents {
  frame: [h: FrameHeader, payload: Uint8Array];
  control: [data: Buffer];
  error: [err: Error];
  close: [];
}

/**
 * The receiving end of a peer data connection: a minimal RFC 6455 WebSocket client. The `ws`
 * library allocates a buffer per socket read and another per message; at a gigabyte a second
 * that allocation is the bottleneck (measured: raw TCP 1.9 GB/s each way with a reused read
 * buffer, 1.0 with a buffer per read, `ws` 0.55). Here the socket reads frame headers into one
 * reused buffer (`onread`), and the kernel reads each data frame's payload straight into one of
 * `slots` preallocated slots (credit-based flow control guarantees a free one for every frame the
 * peer may send) or into its final place when the algorithm says where (`placer`). A same-host
 * sender puts payloads in shared memory instead (`shared`, see shared.ts) and sends only headers.
 * A 'frame' payload is a view into a slot or its placed destination: call release() once it
 * has been consumed.
 */
export class DataSocket extends EventEmitter<DataSocketEvents> {
  private readonly socket: net.Socket;
  private readonly slots: Buffer[];
  private head = 0;
  private released = 0;
  // Parser state: 0 frame header, 1 our 48-byte header, 2 data payload, 3 other payload.
  private state = 0;
  private need = 2;
  private readonly small = Buffer.allocUnsafe(64 + HEADER_BYTES);
  private have = 0;
  private opcode = 0;
  private remaining = 0;
  private slot?: Uint8Array;
  private slotAt = 0;
  private current?: FrameHeader;
  private other: Buffer[] = [];
  private closed = false;

  /** True while the current read lands directly in a slot (see readBuffer). */
  private direct = false;

  /**
   * Given a data frame's header, the place its payload belongs (exactly its length), or
   * undefined for a slot. Placed frames still take a credit; they skip the copy out of the slot.
   */
  placer?: Placer;

  /** The sender's shared-memory slots (shared.ts), when it puts payloads there. */
  shared?: Buffer[];

  private constructor(
    socket: net.Socket,
    private readonly readBuf: Buffer,
    private readonly opts: DataSocketOptions,
  ) {
    super();
    this.socket = socket;
    this.slots = Array.from({ length: opts.slots }, () => Buffer.allocUnsafeSlow(opts.maxPayload));
  }

  /**
   * Opens the TCP connection (TLS with `opts.tls`, reading decrypted bytes the same zero-copy
   * way) and performs the WebSocket opening handshake. A certificate refused either way is an
   * AuthError, a TLS handshake slower than `opts.tlsTimeoutMs` a TimeoutError: both name the peer.
   */
  static connect(host: string, port: number, opts: DataSocketOptions): Promise<DataSocket> {
    return new Promise((resolve, reject) => {
      const readBuf = Buffer.allocUnsafeSlow(opts.readBufferBytes);
      const key = randomBytes(16).toString('base64');
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      const peer = opts.peer ?? `${host}:${port}`;
      let ds: DataSocket | undefined;
      let response = Buffer.alloc(0);
      const timer = setTimeout(() => fail(new Error('WebSocket handshake timed out')), opts.timeoutMs);
      let tlsTimer: NodeJS.Timeout | undefined;
      let secured = false;
      const fail = (err: Error): void => (
        clearTimeout(timer), clearTimeout(tlsTimer), socket.destroy(), reject(err)
      );
      const onread = {
        buffer: () => (ds ? ds.readBuffer() : readBuf),
        callback: (n: number, buf: Uint8Array): boolean => {
          if (ds) return (ds.onRead(buf as Buffer, n), true);
          // Before the upgrade: collect the HTTP response, then hand any rest to the parser.
          response = Buffer.concat([response, (buf as Buffer).subarray(0, n)]);
          const end = response.indexOf('\r\n\r\n');
          if (end < 0)
            return response.length > 8192 ? (fail(new Error('oversized handshake response')), false) : true;
          const head = response.subarray(0, end).toString('latin1');
          if (
            !/^HTTP\/1\.1 101 /.test(head) ||
            !head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)
          ) {
            return (fail(new Error(`WebSocket upgrade refused: ${head.split('\r\n')[0]}`)), false);
          }
          clearTimeout(timer);
          clearTimeout(tlsTimer);
          ds = new DataSocket(socket, readBuf, opts);
          socket.removeAllListeners('error');
          socket.on('error', () => {}); // 'close' follows
          socket.on('close', () => ds!.onClose());
          // Frames may already follow the response: hold them until the caller listens (start()).
          ds.pending = Buffer.from(response.subarray(end + 4));
          socket.pause();
          resolve(ds);
          return true;
        },
      };
      const socket: net.Socket = opts.tls
        ? tls.connect({ host, port, onread, ...tlsClientOptions(opts.tls) } as tls.ConnectionOptions)
        : net.connect({ host, port, noDelay: true, onread });
      if (opts.tls) {
        socket.setNoDelay(true);
        const ms = opts.tlsTimeoutMs ?? opts.timeoutMs;
        const why = `${peer}: the TLS handshake did not complete within ${ms} ms`;
        tlsTimer = setTimeout(() => fail(new TimeoutError(why, { rank: opts.rank })), ms);
        socket.once('secureConnect', () => ((secured = true), clearTimeout(tlsTimer)));
      }
      socket.on('error', (err) => {
        const why = tlsRefusal(err);
        fail(why ? new AuthError(`${peer}: TLS refused: ${why}`, { rank: opts.rank }) : err);
      });
      socket.on('close', () => {
        if (ds) return;
        // A TLS 1.3 client finishes its handshake before the listener has checked its
        // certificate; a listener that rejects it (expired, another CA) just closes, silently.
        if (opts.tls && (socket as tls.TLSSocket).encrypted && secured && response.length === 0) {
          const why = `${peer} closed the connection after the TLS handshake: it refused this end's certificate (expired, or not signed by its CA)`;
          return fail(new AuthError(why, { rank: opts.rank }));
        }
        // (A TLS listener closes a plain connection so too: the hint for the final error.)
        const hint = !opts.tls && response.length === 0 ? ' (without a word: a TLS listener?)' : '';
        fail(new Error(`connection closed during the WebSocket handshake${hint}`));
      });
      socket.write(
        `GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  private pending?: Buffer;

  /** Begins delivering frames; call once the 'frame', 'control' and 'close' listeners are attached. */
  start(): void {
    const rest = this.pending;
    this.pending = undefined;
    if (rest?.length) this.onData(rest, rest.length);
    this.socket.resume();
  }

  /** Both ends of the TCP connection have the same address (see shared.ts). */
  get sameHost(): boolean {
    return sameHost(this.socket);
  }

  get open(): boolean {
    return !this.closed && !this.socket.destroyed;
  }

  /** Sends one binary message (control or credit) as a masked client frame, as RFC 6455 requires. */
  send(data: Buffer): void {
    if (this.open) this.socket.write(maskedFrame(0x2, data));
  }

  /** Gives the oldest delivered frame's slot back. */
  release(): void {
    this.released++;
  }

  /** Starts the closing handshake; the peer answers, then the socket closes. */
  close(): void {
    if (this.open) this.socket.end(maskedFrame(0x8, Buffer.from([0x03, 0xe8])));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  private fail(why: string): void {
    this.emit('error', new ProtocolError(why));
    this.socket.destroy();
  }

  /** Where the next socket read goes: the current slot while a large payload arrives. */
  private readBuffer(): Uint8Array {
    this.direct = this.state === 2 && this.remaining >= DIRECT_READ_MIN;
    if (this.direct) return this.slot!.subarray(this.slotAt, this.slotAt + this.remaining);
    // Otherwise read at most to the end of the next frame's headers, so a large payload behind
    // them goes straight into its slot rather than through this buffer (one copy less).
    return this.state === 3
      ? this.readBuf
      : this.readBuf.subarray(0, (this.state === 2 ? this.remaining : 0) + FRAME_HEAD_MAX);
  }

  private onRead(buf: Buffer, n: number): void {
    if (!this.direct) return this.onData(buf, n);
    this.slotAt += n;
    this.remaining -= n;
    if (this.remaining === 0) this.deliver();
  }

  /** Consumes n bytes of the reused read buffer; nothing may keep a reference to it. */
  private onData(buf: Buffer, n: number): void {
    let at = 0;
    while (at < n && !this.socket.destroyed) {
      if (this.state === 2) {
        // Payload of a data frame: straight into its slot.
        const take = Math.min(this.remaining, n - at);
        buf.copy(this.slot!, this.slotAt, at, at + take);
        this.slotAt += take;
        this.remaining -= take;
        at += take;
        if (this.remaining === 0) this.deliver();
        continue;
      }
      if (this.state === 3) {
        const take = Math.min(this.remaining, n - at);
        this.other.push(Buffer.from(buf.subarray(at, at + take)));
        this.remaining -= take;
        at += take;
        if (this.remaining === 0) this.finishOther();
        continue;
      }
      // States 0 and 1 gather a few header bytes into `small`.
      const take = Math.min(this.need - this.have, n - at);
      buf.copy(this.small, this.have, at, at + take);
      this.have += take;
      at += take;
      if (this.have === this.need) this.state === 0 ? this.onFrameHeader() : this.onDataHeader();
    }
  }

  private onFrameHeader(): void {
    const b0 = this.small[0];
    const b1 = this.small[1];
    if (b1 & 0x80) return this.fail('server frame is masked');
    const len7 = b1 & 0x7f;
    const extra = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    if (this.need === 2 && extra) return void (this.need = 2 + extra);
    const len =
      len7 === 126 ? this.small.readUInt16BE(2) : len7 === 127 ? Number(this.small.readBigUInt64BE(2)) : len7;
    if ((b0 & 0x80) === 0 || (b0 & 0x0f) === 0)
      return this.fail('fragmented frames are not used on data connections');
    if (len > this.opts.maxPayload + HEADER_BYTES)
      return this.fail(`frame of ${len} bytes exceeds the bound ${this.opts.maxPayload + HEADER_BYTES}`);
    this.opcode = b0 & 0x0f;
    this.have = 0;
    if (this.opcode === 0x2 && len >= HEADER_BYTES) {
      // Might be a data frame: read our header first to know where the payload goes.
      this.state = 1;
      this.need = HEADER_BYTES;
      this.remaining = len - HEADER_BYTES;
    } else {
      this.state = 3;
      this.need = 2;
      this.remaining = len;
      this.other = [];
      if (len === 0) this.finishOther();
    }
  }

  private onDataHeader(): void {
    if (this.small.readUInt32LE(0) !== MAGIC) {
      // A control message that happens to be long: keep its first bytes and read the rest.
      this.other = [Buffer.from(this.small.subarray(0, HEADER_BYTES))];
      this.state = 3;
      this.have = 0;
      this.need = 2;
      if (this.remaining === 0) this.finishOther();
      return;
    }
    if (this.head - this.released >= this.slots.length)
      return this.fail('peer sent more frames than its credit');
    try {
      this.current = readHeader(this.small.subarray(0, HEADER_BYTES), this.opts.maxPayload, this.remaining);
    } catch (err) {
      return this.fail((err as Error).message);
    }
    const i = this.head++ % this.slots.length;
    const h = this.current;
    const placed = this.placer?.(h);
    this.have = 0;
    this.need = 2;
    if (h.shared) {
      // The payload waits in the sender's slot i: read it there, or copy it into place.
      if (!this.shared) return this.fail('shared-memory frame on a connection without shared memory');
      const src = this.shared[i].subarray(0, h.length);
      this.slot = placed?.length === h.length ? (copyBytes(placed, src), placed) : src;
      this.slotAt = h.length;
      return this.deliver();
    }
    this.slot = placed?.length === this.remaining ? placed : this.slots[i];
    this.slotAt = 0;
    this.state = 2;
    if (this.remaining === 0) this.deliver();
  }

  private deliver(): void {
    this.state = 0;
    this.emit('frame', this.current!, this.slot!.subarray(0, this.slotAt));
  }

  private finishOther(): void {
    this.state = 0;
    const data = this.other.length === 1 ? this.other[0] : Buffer.concat(this.other);
    this.other = [];
    if (this.opcode === 0x2) this.emit('control', data);
    else if (this.opcode === 0x8) this.close();
    else if (this.opcode === 0x9) this.socket.write(maskedFrame(0xa, data));
    else if (this.opcode !== 0xa) this.fail(`unexpected opcode ${this.opcode}`);
  }
}

/** Payload remainders at least this big are read straight into their slot (fewer syscalls below). */
const DIRECT_READ_MIN = 16 * 1024;
/** A WebSocket frame header with a 64-bit length, then ours. */
const FRAME_HEAD_MAX = 10 + HEADER_BYTES;

export interface DataSocketOptions {
  /** Largest data payload (our frame's payload, not counting its header). */
  maxPayload: number;
  /** Slots: the peer's credit. */
  slots: number;
  readBufferBytes: number;
  timeoutMs: number;
  /** Connect with TLS (mutual: this certificate, the job's CA). */
  tls?: TlsMaterial;
  /** Bound on the TLS handshake alone (default timeoutMs). */
  tlsTimeoutMs?: number;
  /** Who is dialled, for errors ('rank 3 at host:port'), and its rank. */
  peer?: string;
  rank?: number;
}

/** A client-to-server frame: FIN, the opcode, a random mask, and the masked payload. */
function maskedFrame(opcode: number, data: Buffer): Buffer {
  const len = data.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + ext + 4 + len);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) out.writeUInt16BE(len, 2);
  if (ext === 8) out.writeBigUInt64BE(BigInt(len), 2);
  const m = 2 + ext;
  randomFillSync(out, m, 4);
  for (let i = 0; i < len; i++) out[m + 4 + i] = data[i] ^ out[m + (i & 3)];
  return out;
}
