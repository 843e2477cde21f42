import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { type ConnectionOptions, createSecureContext, type TLSSocket, type TlsOptions } from 'node:tls';
import { DEFAULTS } from './defaults.js';
import { ENV, readEnv } from './env.js';
import { InvalidArgumentError } from './errors.js';

/**
 * TLS on every link (rendezvous and peers), as one set of PEM texts: this member's certificate,
 * its key, and the CA that signs every member of the job. Plain strings, so the material crosses
 * into the engine's worker thread as is.
 *
 * Identity is membership: a peer is trusted when its certificate chains to the job's CA (both
 * ways: the listener requests the dialler's certificate), not by its host name, which is why
 * the CA should be scoped to the job (`ringrun --tls` makes one per run). The job token is still
 * proven on top.
 */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
}

/** AES-GCM suites only (AES-NI makes them the cheapest), TLS 1.3: both ends are ringwire. */
const SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384';

/**
 * RINGWIRE_TLS_CERT, _KEY and _CA, read and checked (the key must match the certificate), or
 * undefined when none is set. Setting only some of them is an InvalidArgumentError naming the rest.
 */
export function readTls(env: NodeJS.ProcessEnv = process.env): TlsMaterial | undefined {
  const cert = readEnv('tlsCert', env);
  const key = readEnv('tlsKey', env);
  const ca = readEnv('tlsCa', env);
  if (cert === undefined && key === undefined && ca === undefined) return undefined;
  if (cert === undefined || key === undefined || ca === undefined) {
    const missing = (['tlsCert', 'tlsKey', 'tlsCa'] as const).filter((k) => readEnv(k, env) === undefined);
    throw new InvalidArgumentError(
      `${missing.map((k) => ENV[k].name).join(' and ')} must be set too: TLS needs a certificate, its key and the CA`,
    );
  }
  return checkTls({ cert, key, ca }, `${ENV.tlsCert.name}, ${ENV.tlsKey.name}, ${ENV.tlsCa.name}`);
}

/** Throws an InvalidArgumentError (naming `what`) unless OpenSSL accepts the material. */
export function checkTls(m: TlsMaterial, what = 'TLS material'): TlsMaterial {
  try {
    createSecureContext(m);
  } catch (err) {
    throw new InvalidArgumentError(`${what}: ${(err as Error).message}`);
  }
  return m;
}

/** Options for a listener (https.createServer): mutual TLS, a handshake bounded by `handshakeTimeoutMs`. */
export function tlsServerOptions(m: TlsMaterial, handshakeTimeoutMs: number): TlsOptions {
  return {
    ...m,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    ciphers: SUITES,
    handshakeTimeout: handshakeTimeoutMs,
  };
}

/** Options for a dialler (tls.connect, `ws` clients): our certificate, the job's CA, no host-name check. */
export function tlsClientOptions(m: TlsMaterial): ConnectionOptions {
  return {
    ...m,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    ciphers: SUITES,
    // Trust is the CA's signature (see TlsMaterial): peers are reached by address, not name.
    checkServerIdentity: () => undefined,
  };
}

/** OpenSSL's verdicts on the other end's certificate (Node reports them as `err.code`). */
const UNTRUSTED = /^(CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|INVALID_CA|HOSTNAME_MISMATCH|ERR_TLS_CERT)/;

/**
 * Why a connection failed at the TLS layer, in words, or undefined when it failed otherwise (a
 * refused or reset TCP connection, which is worth retrying). A TLS failure is not retried: the
 * certificates will not change.
 */
export function tlsRefusal(err: unknown): string | undefined {
  const code = String((err as NodeJS.ErrnoException | undefined)?.code ?? '');
  const msg = (err as Error | undefined)?.message ?? '';
  if (UNTRUSTED.test(code)) return `its certificate is not trusted (${code}: ${msg})`;
  if (/DID_NOT_RETURN_A_CERTIFICATE|NO_CERTIFICATE/.test(code))
    return `it presented no certificate (${code})`;
  if (/ALERT/.test(code)) return `it refused this end's certificate (${code})`;
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST/.test(code))
    return `it does not speak TLS (${code})`;
  if (code.startsWith('ERR_SSL_')) return `TLS failed (${code})`;
  return undefined;
}

/**
 * The HTTP server under a WebSocket listener: plain, or with `tls` an https server with mutual
 * TLS. Requests get `timeoutMs` for their head, and a TLS handshake as long; one that fails
 * (an untrusted or missing certificate, plain HTTP, a stall) is reported to `refused`.
 */
export function createListener(
  tls: TlsMaterial | undefined,
  timeoutMs: number,
  handler: RequestListener,
  refused: (remote: string, why: string) => void,
): Server {
  const opts = { maxHeaderSize: DEFAULTS.maxHeaderBytes };
  const server = tls
    ? (createHttpsServer({ ...opts, ...tlsServerOptions(tls, timeoutMs) }, handler) as unknown as Server)
    : createHttpServer(opts, handler);
  server.headersTimeout = server.requestTimeout = timeoutMs;
  // Node destroys a socket whose certificate it rejects before reporting it, so its address is
  // noted at accept time, by the TCP socket (`_parent` of the TLS one: undocumented, hence '?').
  const remotes = new WeakMap<object, string>();
  server.on('connection', (raw: Socket) => remotes.set(raw, `${raw.remoteAddress}:${raw.remotePort}`));
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
    const under = (socket as unknown as { _parent?: Socket | null })._parent;
    const remote =
      (under && remotes.get(under)) ?? `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const stalled = (err as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
    const why = socket.authorizationError
      ? `its certificate is not trusted (${socket.authorizationError})`
      : stalled
        ? `the handshake did not complete within ${timeoutMs} ms`
        : (err as NodeJS.ErrnoException).code === 'ECONNRESET'
          ? 'it hung up during the handshake (it does not trust this end: another CA?)'
          : (tlsRefusal(err) ?? err.message);
    refused(remote, `TLS: ${why}`);
  });
  return server;
}
