import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { type TLSSocket, Server as TlsServer } from 'node:tls';
import { DEFAULTS } from './defaults.js';

export interface PreAuthLimits {
  /** Unauthenticated connections held at once; one more drops the oldest. */
  maxPending?: number;
  /** Bytes of WebSocket frames a connection may send before it authenticates. */
  maxBytes?: number;
  /** Called for each connection the guard drops (the caller logs it, rate-limited). */
  dropped: (remote: string, why: string) => void;
}

/**
 * Bounds what strangers can cost a listener before they authenticate, using only documented
 * Node APIs (the HTTP server's 'connection' and 'upgrade' events and the socket's 'data' events),
 * so `ws` keeps one maxPayload for authenticated traffic:
 * - at most `maxPending` connections are unauthenticated at once, counted from TCP accept (a
 *   slow HTTP request counts too); a new one beyond that destroys the OLDEST pending one, so a
 *   flood cannot lock out a real peer that connects later (a real one authenticates within a
 *   round trip; a dialler that is dropped anyway retries);
 * - after the upgrade a connection may send at most `maxBytes` (one hello) until it
 *   authenticates: a larger or partial message is not buffered, the socket is destroyed.
 * HTTP request heads are bounded by the server's maxHeaderSize (DEFAULTS.maxHeaderBytes).
 */
export class PreAuthGuard {
  private readonly pending = new Map<Socket, () => void>();
  private readonly maxPending: number;
  private readonly maxBytes: number;

  constructor(private readonly o: PreAuthLimits) {
    this.maxPending = o.maxPending ?? DEFAULTS.maxPendingConnections;
    this.maxBytes = o.maxBytes ?? DEFAULTS.maxHelloBytes;
  }

  /** Watches `server`; call before the WebSocketServer attaches, or at least before it listens. */
  watch(server: Server | HttpsServer): void {
    server.on('connection', (socket: Socket) => this.admit(socket));
    // An https server upgrades and authenticates the TLS socket over the TCP one: count that instead.
    if (server instanceof TlsServer) server.on('secureConnection', (s: TLSSocket) => this.secured(s));
    // Prepended so the bytes that came with the upgrade request are counted before ws sees them.
    server.prependListener('upgrade', (_req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.upgraded(socket, head),
    );
  }

  /** Unauthenticated connections now held. */
  get size(): number {
    return this.pending.size;
  }

  /** The connection proved the token: no longer counted, nor limited. */
  authenticated(socket: Socket): void {
    this.forget(socket);
  }

  private forget(socket: Socket): void {
    this.pending.get(socket)?.();
    this.pending.delete(socket);
  }

  private admit(socket: Socket): void {
    if (this.pending.size >= this.maxPending) {
      const [oldest] = this.pending.keys();
      this.drop(oldest, `more than ${this.maxPending} unauthenticated connections; dropping the oldest`);
    }
    this.pending.set(socket, () => {});
    socket.once('close', () => this.pending.delete(socket));
  }

  /** A TLS handshake completed: the pending TCP socket under `s` is now known as `s`. */
  private secured(s: TLSSocket): void {
    const raw = [...this.pending.keys()].find(
      (p) => p !== s && p.remotePort === s.remotePort && p.remoteAddress === s.remoteAddress,
    );
    if (!raw) return;
    this.pending.delete(raw);
    this.pending.set(s, () => {});
    s.once('close', () => this.pending.delete(s));
  }

  private upgraded(socket: Socket, head: Buffer): void {
    if (!this.pending.has(socket)) return;
    let received = head.length;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > this.maxBytes)
        this.drop(socket, `sent over ${this.maxBytes} bytes before authenticating`);
    };
    if (received > this.maxBytes) return this.drop(socket, 'upgrade request carried too much data');
    socket.prependListener('data', onData);
    this.pending.set(socket, () => socket.removeListener('data', onData));
  }

  private drop(socket: Socket, why: string): void {
    this.forget(socket); // counted once, logged once
    this.o.dropped(`${socket.remoteAddress}:${socket.remotePort}`, why);
    socket.destroy();
  }
}
