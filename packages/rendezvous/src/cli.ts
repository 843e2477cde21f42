#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { ENV, readEnv, readTls, resolveHeartbeatTimeoutMs } from '@ringwire/common';
import { InvalidArgumentError as CliArgError, Command } from 'commander';
import { jobCredential } from './protocol.js';
import { RendezvousServer } from './server.js';

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliArgError('must be an integer in 0..65535');
  return n;
};
const seconds = (v: string) => {
  const n = Number(v);
  if (!/^\d*\.?\d+$/.test(v) || !(n >= 0.1)) throw new CliArgError('must be a number of seconds >= 0.1');
  return n;
};

const program = new Command('ringwire-rendezvous').description(
  'Run the ringwire rendezvous service standalone, or issue a job credential.',
);

/** The server's secret: --secret-file (or its old name --token-file), else the environment. */
function readSecret(cmd: Command, file: string | undefined): string {
  if (!file) return readEnv('rendezvousSecret') ?? '';
  let secret = '';
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch (err) {
    cmd.error(`cannot read the secret file: ${(err as Error).message}`);
  }
  if (!secret) cmd.error(`secret file ${file} is empty`);
  return secret;
}

program
  .command('serve', { isDefault: true })
  .description('serve rendezvous for any number of jobs (the default command)')
  .option('--host <host>', 'address to bind (non-loopback needs a secret)', '127.0.0.1')
  .option('--port <port>', 'port to bind (0 picks a free one)', port, 29400)
  .option(
    '--secret-file <file>',
    `file holding the server's secret, from which each job's credential derives (default $${ENV.rendezvousSecret.name})`,
  )
  .option('--token-file <file>', 'the old name of --secret-file')
  .option(
    '--heartbeat-timeout <s>',
    `declare a silent rank lost after this many seconds (default $${ENV.heartbeatTimeoutMs.name}, else max(5, $${ENV.timeoutMs.name}))`,
    seconds,
  )
  .option(
    '--tls-cert <file>',
    `PEM certificate: serve wss (with --tls-key and --tls-ca; default $${ENV.tlsCert.name})`,
  )
  .option('--tls-key <file>', `the certificate's PEM private key (default $${ENV.tlsKey.name})`)
  .option('--tls-ca <file>', `the PEM CA that signs every member (default $${ENV.tlsCa.name})`)
  .action(
    async (
      opts: {
        host: string;
        port: number;
        secretFile?: string;
        tokenFile?: string;
        heartbeatTimeout?: number;
        tlsCert?: string;
        tlsKey?: string;
        tlsCa?: string;
      },
      cmd: Command,
    ) => {
      const secret = readSecret(cmd, opts.secretFile ?? opts.tokenFile);
      let server: RendezvousServer;
      try {
        const heartbeatTimeoutMs = resolveHeartbeatTimeoutMs({
          heartbeatTimeoutMs: opts.heartbeatTimeout && Math.round(opts.heartbeatTimeout * 1000),
        });
        // The flags name the same files as RINGWIRE_TLS_*, and are parsed by the same rules.
        const files = {
          [ENV.tlsCert.name]: opts.tlsCert,
          [ENV.tlsKey.name]: opts.tlsKey,
          [ENV.tlsCa.name]: opts.tlsCa,
        };
        const given = Object.values(files).some((f) => f !== undefined);
        const tls = readTls(given ? files : process.env);
        server = new RendezvousServer({ host: opts.host, port: opts.port, secret, heartbeatTimeoutMs, tls });
        const { url } = await server.listen();
        process.stdout.write(
          `ringwire-rendezvous listening on ${url} (status: ${url.replace(/^ws/, 'http')}/status, metrics: /metrics, live job page: /?token=; heartbeat timeout ${heartbeatTimeoutMs} ms)\n`,
        );
      } catch (err) {
        cmd.error(`ringwire-rendezvous: ${(err as Error).message}`);
      }
      const stop = () => void server.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
  );

program
  .command('token')
  .description(
    `print a job's credential (give it to that job's workers as $${ENV.token.name}); it opens that job only`,
  )
  .requiredOption(`--job <id>`, `the job id (as the workers' $${ENV.jobId.name})`)
  .option('--secret-file <file>', `file holding the server's secret (default $${ENV.rendezvousSecret.name})`)
  .action((opts: { job: string; secretFile?: string }, cmd: Command) => {
    const secret = readSecret(cmd, opts.secretFile);
    if (!secret) cmd.error(`token: give --secret-file or set ${ENV.rendezvousSecret.name}`);
    process.stdout.write(`${jobCredential(secret, opts.job)}\n`);
  });

await program.parseAsync();
