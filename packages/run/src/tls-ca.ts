import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ENV, readTls, type TlsMaterial } from '@ringwire/common';
import { UsageError } from './hosts.js';

/** PEM files of one CA (its key only while it still issues). */
export interface CaFiles {
  cert: string;
  key: string;
}

/** A member's certificate and key, signed by a CA (PEM files). */
export interface MemberFiles {
  cert: string;
  key: string;
}

/**
 * The files `ringrun --tls` makes for one run: a job-scoped CA and one member certificate that
 * every worker and the rendezvous present (identity is membership of the job: see TlsMaterial),
 * in a private directory (0700, keys 0600). `remove()` deletes it; the CA's key is deleted at once.
 */
export interface JobTls {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  remove(): void;
}

/** Valid this long: longer than any job; the CA's key is gone once the member is issued. */
const DAYS = 30;

/** Runs Debian's `openssl` CLI; a missing one is a UsageError saying how to get it. */
function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new UsageError(
        '--tls needs the openssl command (apt-get install openssl) or --tls-cert/--tls-key/--tls-ca',
      );
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || (err as Error).message}`);
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed CA (P-256) in `dir`, as `name`.pem and `name`.key. */
export function makeCa(dir: string, name = 'ca', days = DAYS): CaFiles {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  // biome-ignore format: flag/value pairs
  openssl([
    'req', '-x509', ...EC, '-keyout', key, '-out', cert, '-days', String(days),
    '-subj', `/CN=ringwire job CA ${randomBytes(6).toString('hex')}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(key, 0o600);
  return { cert, key };
}

/**
 * A member certificate for both ends of a link (serverAuth and clientAuth) signed by `ca`, valid
 * for `days` from now (a negative number makes one that has already expired, for tests).
 */
export function issueCert(dir: string, ca: CaFiles, name = 'member', days = DAYS): MemberFiles {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  openssl(['req', '-new', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=ringwire ${name}`]);
  chmodSync(key, 0o600);
  // biome-ignore format: flag/value pairs
  openssl([
    'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-out', cert, '-days', String(days),
    '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-extfile', ext,
  ]);
  rmSync(csr, { force: true });
  rmSync(ext, { force: true });
  return { cert, key };
}

/** Makes a job's CA and member certificate in a fresh private temp dir (see JobTls). */
export function createJobTls(): JobTls {
  const dir = mkdtempSync(join(tmpdir(), 'ringrun-tls-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const ca = makeCa(dir);
    const member = issueCert(dir, ca);
    rmSync(ca.key); // nothing more is issued for this job
    return { dir, ca: ca.cert, ...member, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** PEM files: a member's certificate and key, and the CA that signs every member. */
export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/**
 * The job's TLS: the files named (LaunchOptions.tls, else RINGWIRE_TLS_* here), or with `true` a
 * fresh job CA, read and checked; the variables that hand them to the workers; and `remove` for
 * files made here. Undefined without TLS.
 */
export function jobTls(
  want: boolean | TlsFiles | undefined,
  env: NodeJS.ProcessEnv,
  cwd: string,
  remote: boolean,
  log: (m: string) => void,
): { material: TlsMaterial; env: Record<string, string>; remove: () => void } | undefined {
  let files: TlsFiles | undefined = typeof want === 'object' ? want : undefined;
  let remove = () => {};
  if (!files && want !== false) {
    const material = readTls(env); // the worker environment's own files, when set
    if (material)
      files = { cert: env[ENV.tlsCert.name]!, key: env[ENV.tlsKey.name]!, ca: env[ENV.tlsCa.name]! };
  }
  if (!files && want === true) {
    const made = createJobTls();
    files = made;
    process.once('exit', made.remove); // even when the launch fails half-way
    remove = () => (process.removeListener('exit', made.remove), made.remove());
    if (remote)
      log(
        `--tls: the job's certificates are in ${made.dir} on this host; remote hosts need the same files there (or use --tls-cert/--tls-key/--tls-ca with files on every host)`,
      );
  }
  if (!files) return undefined;
  const abs = { cert: resolve(cwd, files.cert), key: resolve(cwd, files.key), ca: resolve(cwd, files.ca) };
  const vars = { [ENV.tlsCert.name]: abs.cert, [ENV.tlsKey.name]: abs.key, [ENV.tlsCa.name]: abs.ca };
  try {
    return { material: readTls(vars)!, env: vars, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
