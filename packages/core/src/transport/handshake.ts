import { randomBytes } from 'node:crypto';
import { AuthError, escapeLog, type Logger, ProtocolError } from '@ringwire/common';
import { decode, encode, type PeerTable, proof, proofMatches, type Untrusted } from '@ringwire/rendezvous';
import type WebSocket from 'ws';
import type { HandshakeMessage } from './control.js';
import type { DataSocket } from './data-socket.js';
import { openRegion, type SharedRegion, unlinkRegion } from './shared-memory.js';

/** What both ends of a peer handshake need (see control.ts for the messages). */
export interface HandshakeOptions {
  job: string;
  token: string;
  /** Slots of a shared-memory region: one per credit, each one chunk. */
  credits: number;
  chunkBytes: number;
  /** Whether this rank offers and maps shared memory at all. */
  sharedMemory: boolean;
  log: Logger;
}

export interface AcceptOptions extends HandshakeOptions {
  /** The peer's address, for log lines. */
  remote: string;
  sameHost: boolean;
  authTimeoutMs: number;
  /** Settles once the rendezvous has formed the job (a hello may arrive before that). */
  table: Promise<PeerTable & { rank: number }>;
  /** Whether a rank already has its connection. */
  taken: (rank: number) => boolean;
  /** A fresh shared-memory region to offer, or undefined when none can be made. */
  region: () => SharedRegion | undefined;
  /** The hello proved the job token: the connection is no longer a stranger's. */
  authenticated: () => void;
}

/** An accepted peer: its rank, and the slots of its shared memory when it mapped them. */
export interface Accepted {
  rank: number;
  shared?: Buffer[];
}

/**
 * The listener's side of a new peer connection: challenge; the peer's hello must prove the job
 * token, name this generation and a rank not yet connected; welcome, with a shared-memory offer
 * to a same-host peer, and then the peer's answer to it. Resolves with the peer, or undefined
 * when it was refused (logged, and the socket closed).
 */
export function acceptPeer(ws: WebSocket, o: AcceptOptions): Promise<Accepted | undefined> {
  const nonce = randomBytes(32);
  return new Promise((resolve) => {
    let done = false;
    const refuse = (why: string, code = 1008) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      o.log('warn', `peer listener: closing ${o.remote}: ${why}`);
      ws.close(code, 'rejected');
      setTimeout(() => ws.terminate(), 1000).unref();
      resolve(undefined);
    };
    const accept = (peer: Accepted) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(peer);
    };
    const timer = setTimeout(() => refuse('did not authenticate in time'), o.authTimeoutMs);
    ws.on('error', () => {});
    ws.once('close', () => {
      if (!done) (done = true), clearTimeout(timer), resolve(undefined);
    });
    ws.once('message', async (data: Buffer) => {
      let hello: Untrusted;
      try {
        hello = decode(data);
      } catch {
        return refuse('malformed hello');
      }
      // Everything in a hello is a stranger's until the proof matches: escaped before it is logged.
      if (hello.t !== 'hello' || hello.job !== o.job) {
        const what = hello.t !== 'hello' ? `${escapeLog(hello.t, 16)} instead of hello` : 'hello';
        return refuse(`${what} for another job (${escapeLog(hello.job, 64)})`, 4401);
      }
      if (!proofMatches(o.token, nonce, o.job, hello.proof) || !(hello.nonce instanceof Uint8Array))
        return refuse('authentication failed', 4401);
      o.authenticated();
      const table = await o.table;
      const r = hello.rank;
      if (hello.generation !== table.generation)
        return refuse(
          `stale generation ${escapeLog(hello.generation, 16)}, this job is at ${table.generation}`,
        );
      const valid = typeof r === 'number' && Number.isInteger(r) && r >= 0 && r < table.size;
      if (!valid || r === table.rank || o.taken(r))
        return refuse(`bad or duplicate rank ${escapeLog(r, 16)}`);
      const region = o.sameHost && o.sharedMemory ? o.region() : undefined;
      const welcome: HandshakeMessage = { t: 'welcome', proof: proof(o.token, hello.nonce, o.job) };
      if (region) welcome.shm = region.offer;
      ws.send(encode(welcome));
      if (!region) return accept({ rank: r });
      // The peer answers the offer first (before any credit); the file goes once it has.
      ws.once('close', () => unlinkRegion(region));
      ws.once('message', (answer: Buffer) => {
        unlinkRegion(region);
        let ok: boolean;
        try {
          const reply = decode(answer);
          ok = reply.t === 'shm' && reply.ok === true;
        } catch {
          return refuse('malformed shared-memory answer');
        }
        accept({ rank: r, shared: ok ? region.slots : undefined });
      });
    });
    ws.send(encode({ t: 'challenge', nonce } satisfies HandshakeMessage));
  });
}

export interface GreetOptions extends HandshakeOptions {
  /** The peer being dialled, and where, for errors. */
  rank: number;
  where: string;
  /** This rank and its generation, which the hello states. */
  myRank: number;
  generation: number;
  deadline: number;
  /** A same-host offer could not be mapped (the connection then carries payloads itself). */
  unmapped: (err: Error) => void;
}

/**
 * The dialler's side: answers the challenge with a hello, checks that the listener proves the
 * token too, and maps its shared-memory offer when there is one. Resolves once the connection
 * may carry data; rejects (the socket destroyed) on a failed proof, junk or the deadline.
 */
export function greetPeer(ds: DataSocket, o: GreetOptions): Promise<void> {
  const myNonce = randomBytes(32);
  const { rank } = o;
  return new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => (clearTimeout(timer), ds.destroy(), reject(err));
    const timer = setTimeout(
      () => fail(new AuthError(`rank ${rank} did not complete the handshake in time`, { rank })),
      Math.max(1, o.deadline - Date.now()),
    );
    ds.once('close', () => fail(new Error('closed during the handshake')));
    ds.on('error', (err: Error) => fail(err));
    ds.on('control', (data: Buffer) => {
      let msg: Untrusted;
      try {
        msg = decode(data);
      } catch {
        return fail(new ProtocolError(`rank ${rank} sent a malformed handshake`, { rank }));
      }
      if (msg.t === 'challenge' && msg.nonce instanceof Uint8Array) {
        const hello: HandshakeMessage = {
          t: 'hello',
          job: o.job,
          generation: o.generation,
          rank: o.myRank,
          proof: proof(o.token, msg.nonce, o.job),
          nonce: myNonce,
        };
        return ds.send(encode(hello));
      }
      if (msg.t !== 'welcome' || !proofMatches(o.token, myNonce, o.job, msg.proof)) {
        const why = `rank ${rank} at ${o.where} failed to prove it holds the job token`;
        return fail(new AuthError(why, { rank }));
      }
      clearTimeout(timer);
      if (msg.shm !== undefined) {
        try {
          if (o.sharedMemory && ds.sameHost) ds.shared = openRegion(msg.shm, o.credits, o.chunkBytes);
        } catch (err) {
          o.unmapped(err as Error);
        }
        ds.send(encode({ t: 'shm', ok: ds.shared !== undefined } satisfies HandshakeMessage));
      }
      ds.removeAllListeners();
      resolve();
    });
    ds.start();
  });
}
