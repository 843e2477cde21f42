#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { InvalidArgumentError as CliArgError, Command } from 'commander';
import { RendezvousServer } from './server.js';

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliArgError('must be an integer in 0..65535');
  return n;
};

const program = new Command('ringwire-rendezvous')
  .description('Run the ringwire rendezvous service standalone.')
  .option('--host <host>', 'address to bind (non-loopback needs --token-file)', '127.0.0.1')
  .option('--port <port>', 'port to bind (0 picks a free one)', port, 29400)
  .option('--token-file <file>', 'file holding the job token every worker must prove')
  .action(async (opts: { host: string; port: number; tokenFile?: string }) => {
    let token = '';
    if (opts.tokenFile) {
      try {
        token = readFileSync(opts.tokenFile, 'utf8').trim();
      } catch (err) {
        program.error(`cannot read --token-file: ${(err as Error).message}`);
      }
      if (!token) program.error(`--token-file ${opts.tokenFile} is empty`);
    }
    const server = new RendezvousServer({ host: opts.host, port: opts.port, token });
    try {
      const { url } = await server.listen();
      process.stdout.write(
        `ringwire-rendezvous listening on ${url} (status: ${url.replace('ws:', 'http:')}/status)\n`,
      );
    } catch (err) {
      program.error(`ringwire-rendezvous: ${(err as Error).message}`);
    }
    const stop = () => void server.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

await program.parseAsync();
