#!/usr/bin/env node
import { InvalidArgumentError as CliArgError, Command, type Option } from 'commander';
import { check, formatCheck, ownVersion } from './check.js';
import { type ElasticOptions, launchElastic } from './elastic.js';
import { type HostSlots, parseHostList, readHostfile, UsageError } from './hosts.js';
import { k8sCommand } from './k8s-cli.js';
import { launch } from './launch.js';
import { splitWords } from './shell.js';

const positiveInt = (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new CliArgError('must be a positive integer');
  return Number(v);
};
const seconds = (v: string) => {
  const n = Number(v);
  if (!/^\d*\.?\d+$/.test(v) || !(n > 0)) throw new CliArgError('must be a positive number of seconds');
  return n;
};
const nonNegativeInt = (v: string) => {
  if (!/^\d+$/.test(v)) throw new CliArgError('must be an integer >= 0');
  return Number(v);
};
const collect = (v: string, list: string[] = []) => [...list, v];

const HELP = `
Each worker gets RINGWIRE_RANK, RINGWIRE_SIZE, RINGWIRE_LOCAL_RANK, RINGWIRE_LOCAL_SIZE,
RINGWIRE_RENDEZVOUS (ws://host:port), RINGWIRE_JOB_ID, RINGWIRE_TOKEN (this job's credential
for a rendezvous with a fresh secret of its own) and RINGWIRE_HEARTBEAT_TIMEOUT_MS; with TLS
(--tls, --tls-cert/--tls-key/--tls-ca, or RINGWIRE_TLS_* set here) also RINGWIRE_TLS_CERT,
RINGWIRE_TLS_KEY and RINGWIRE_TLS_CA, and the rendezvous is wss://. Output lines
are prefixed with [rank], stdout on stdout and stderr on stderr.

Hosts: ranks fill hosts in order (host1 gets ranks 0..slots-1, then host2, ...). Hosts other
than localhost/127.0.0.1/this machine's name are reached with ssh -o BatchMode=yes, in the same
working directory; a remote worker gets only the RINGWIRE_* variables and those given with -x.
The ssh command is --ssh, else $RINGRUN_SSH, else "ssh", e.g.
  --ssh "ssh -i ~/.ssh/cluster -p 2222 -o StrictHostKeyChecking=accept-new"
The rendezvous listens on --bind, else on the local address that routes to the hosts (127.0.0.1
when every worker is local), on a free port. --dashboard prints the URL of its live job page,
http://<address>:<port>/?token=<the job's credential>; the same credential as a bearer token
reads its Prometheus metrics at /metrics.

Exit status: 0 when every worker succeeded; else the exit code of the rank at the root of the
failure (the rank a worker's error names, else the first to fail; ringrun names it first), 128+n
when it was killed by signal n (remote: the shell's 128+n); 124 when --timeout or --start-timeout
hit; 127 when the command is not found; 2 for bad usage; 130/143 when ringrun is interrupted.

Under mpirun, srun or a Kubernetes Indexed Job, workers need no ringrun: init() reads the
engine's variables (see the README). ringrun k8s --help: write a job's Kubernetes manifests.
Elastic jobs (any of --min-np, --max-np, --max-restarts, --host-discovery-script): a worker's
death does not stop the job while at least --min-np workers remain; the survivors re-form (see
the README's "Elastic training"). Each worker slot gets RINGWIRE_WORKER_ID=host:slot (host:slot#n
after its n-th restart), which tags its output lines instead of the rank, and RINGWIRE_MIN_SIZE,
RINGWIRE_MAX_SIZE; RINGWIRE_SIZE is the initial size. ringrun prints one line per generation.
--min-np and --max-np default to -np. The discovery script (an executable) prints host:slots
lines; it runs every --discovery-interval seconds (default 5) and must finish within that
interval; a run that fails, hangs or prints anything else is warned about and the previous hosts
are kept. The job starts -np workers on the hosts it lists, then grows up to --max-np as slots
allow, and stops the workers of hosts no longer listed. A host with 3 worker failures within
--host-cooldown seconds (default 60) gets no new workers for that long. Exit status: 0 once a
worker finished with 0 and the others have ended; when fewer than --min-np workers remain, the
exit code of the first worker that failed.

Examples:
  ringrun -np 4 node train.mjs --epochs 3
  ringrun -H node1:2,node2:2 -x RINGWIRE_LOG_LEVEL=info node train.mjs
  ringrun --hostfile hosts.txt --bind 10.0.0.1 --timeout 3600 node train.mjs
`;

const program = new Command('ringrun')
  .usage('[options] command [args...]')
  .description('Launch a ringwire job: N copies of a command, here or on other hosts over ssh.')
  .option('-n, --np <n>', 'number of workers (also -np; default: the total slots of the hosts)', positiveInt)
  .option('-H, --host <host:slots,...>', 'hosts and their slots, comma-separated (repeatable)', collect)
  .option('--hostfile <file>', 'file of "host slots=N" lines (# comments)')
  .option('-x <VAR[=value]>', 'set or forward an environment variable to every worker (repeatable)', collect)
  .option('--timeout <s>', 'stop the job after this many seconds (exit 124)', seconds)
  .option(
    '--start-timeout <s>',
    'every rank must join the rendezvous within this many seconds (exit 124)',
    seconds,
  )
  .option('--grace <s>', 'seconds between SIGTERM and SIGKILL when stopping workers', seconds, 5)
  .option(
    '--heartbeat-timeout <s>',
    'declare a silent (frozen) rank lost after this many seconds (default $RINGWIRE_HEARTBEAT_TIMEOUT_MS, else max(5, $RINGWIRE_TIMEOUT_MS))',
    seconds,
  )
  .option('--min-np <n>', 'elastic: the job goes on while at least n workers run (default -np)', positiveInt)
  .option('--max-np <n>', 'elastic: at most n workers at once (default -np)', positiveInt)
  .option(
    '--max-restarts <n>',
    'elastic: restart each failed worker slot up to n times (default 0)',
    nonNegativeInt,
  )
  .option('--host-discovery-script <path>', 'elastic: an executable printing the current host:slots lines')
  .option(
    '--discovery-interval <s>',
    'elastic: run the discovery script every s seconds (default 5)',
    seconds,
  )
  .option(
    '--host-cooldown <s>',
    'elastic: a host with 3 worker failures within s seconds gets no new workers for s seconds (default 60)',
    seconds,
  )
  .option('--bind <addr>', 'address the rendezvous listens on (one every host reaches; 0.0.0.0 for all)')
  .option('--ssh <command>', 'ssh command and options for remote hosts (default $RINGRUN_SSH or ssh)')
  .option(
    '--tls',
    'TLS on every link: a CA and certificate made for this run unless the files below are given',
  )
  .option('--tls-cert <file>', "the workers' PEM certificate (with --tls-key and --tls-ca; implies --tls)")
  .option('--tls-key <file>', "the certificate's PEM private key")
  .option('--tls-ca <file>', 'the PEM CA that signs every member of the job')
  .option('--verbose', 'print the launch plan and the rendezvous address on stderr (and the summary)')
  .option(
    '--timeline <file>',
    'record a Chrome trace of the job (Perfetto, chrome://tracing) into this file (RINGWIRE_TIMELINE)',
  )
  .option('--summary', 'at the end, print per worker: exit, wall time, bytes sent, mean busbw')
  .option('--dashboard', "print the URL of the live job page (the rendezvous's, with the job's token)")
  .option(
    '--check',
    'print the version, whether native kernels load and which TensorFlow.js backends are installed',
  )
  .version(ownVersion(), '-V, --version')
  .argument('[command...]')
  .passThroughOptions() // the worker command's own flags are left alone
  .enablePositionalOptions() // ringrun's options come before `k8s`, the subcommand's after it
  .addCommand(k8sCommand)
  .addHelpText('after', HELP)
  .exitOverride((e) =>
    process.exit(e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2),
  );

interface Opts {
  np?: number;
  host?: string[];
  hostfile?: string;
  x?: string[];
  timeout?: number;
  startTimeout?: number;
  grace: number;
  heartbeatTimeout?: number;
  bind?: string;
  ssh?: string;
  verbose?: boolean;
  dashboard?: boolean;
  check?: boolean;
  timeline?: string;
  summary?: boolean;
  minNp?: number;
  maxNp?: number;
  maxRestarts?: number;
  hostDiscoveryScript?: string;
  discoveryInterval?: number;
  hostCooldown?: number;
  tls?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** The elastic options given, or undefined for a fixed-size job (its behaviour is unchanged). */
function elasticOptions(opts: Opts): ElasticOptions | undefined {
  const e: ElasticOptions = {
    minNp: opts.minNp,
    maxNp: opts.maxNp,
    maxRestarts: opts.maxRestarts,
    discoveryScript: opts.hostDiscoveryScript,
    discoveryIntervalMs: opts.discoveryInterval && opts.discoveryInterval * 1000,
    hostCooldownMs: opts.hostCooldown && opts.hostCooldown * 1000,
  };
  if (opts.discoveryInterval !== undefined && !e.discoveryScript)
    throw new UsageError('--discovery-interval needs --host-discovery-script');
  if (e.minNp !== undefined || e.maxNp !== undefined || e.maxRestarts !== undefined || e.discoveryScript) {
    const unsupported = (['timeline', 'summary'] as const).filter((f) => opts[f]);
    if (unsupported.length)
      throw new UsageError(`--${unsupported.join(', --')}: not available for elastic jobs yet`);
    return e;
  }
  if (opts.hostCooldown !== undefined)
    throw new UsageError('--host-cooldown is for elastic jobs (--min-np, ...)');
  return undefined;
}

/** --tls and its files: all three files, or none (then --tls makes them). */
function tlsOption(o: Opts): boolean | { cert: string; key: string; ca: string } | undefined {
  const files = [o.tlsCert, o.tlsKey, o.tlsCa];
  if (files.every((f) => f === undefined)) return o.tls;
  if (files.some((f) => f === undefined))
    throw new UsageError('--tls-cert, --tls-key and --tls-ca go together');
  return { cert: o.tlsCert!, key: o.tlsKey!, ca: o.tlsCa! };
}

/** `-np` is mpirun's spelling; commander would read it as `-n p`. Rewrite it up to the command. */
function normalizeArgv(argv: string[], options: readonly Option[]): string[] {
  if (argv[0] === k8sCommand.name()) return [argv[0], ...normalizeArgv(argv.slice(1), k8sCommand.options)];
  const out = [...argv];
  for (let i = 0; i < out.length; i++) {
    if (out[i] === '-np') out[i] = '--np';
    else if (out[i].startsWith('-np=')) out[i] = `--np=${out[i].slice(4)}`;
    const t = out[i];
    if (t === '--' || !t.startsWith('-') || t === '-') break;
    const opt = options.find((o) => o.short === t || o.long === t);
    if (opt && (opt.required || opt.optional)) i++;
  }
  return out;
}

function forwardedEnv(specs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of specs) {
    const eq = s.indexOf('=');
    const name = eq < 0 ? s : s.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`-x ${s}: bad variable name`);
    if (eq >= 0) env[name] = s.slice(eq + 1);
    else if (process.env[name] !== undefined) env[name] = process.env[name]!;
    else process.stderr.write(`ringrun: warning: -x ${name}: not set here, not forwarded\n`);
  }
  return env;
}

program.action(async (command: string[], opts: Opts) => {
  if (opts.check) {
    process.stdout.write(formatCheck(await check()));
    return;
  }
  const controller = new AbortController();
  let result: Awaited<ReturnType<typeof launch>>;
  try {
    if (command.length === 0) throw new UsageError('missing command: ringrun [options] command [args...]');
    const hosts: HostSlots[] = [
      ...(opts.host ?? []).flatMap(parseHostList),
      ...(opts.hostfile ? readHostfile(opts.hostfile) : []),
    ];
    let signals = 0;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        // A second signal does not wait for the grace period: the exit handler kills everything.
        if (++signals > 1) process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
        controller.abort(sig);
      });
    }
    const elastic = elasticOptions(opts);
    const options = {
      command: command[0],
      args: command.slice(1),
      np: opts.np,
      hosts: hosts.length ? hosts : undefined,
      env: forwardedEnv(opts.x ?? []),
      timeoutMs: opts.timeout && opts.timeout * 1000,
      startTimeoutMs: opts.startTimeout && opts.startTimeout * 1000,
      graceMs: opts.grace * 1000,
      heartbeatTimeoutMs: opts.heartbeatTimeout && Math.max(100, Math.round(opts.heartbeatTimeout * 1000)),
      bind: opts.bind,
      ssh: opts.ssh ? splitWords(opts.ssh) : undefined,
      verbose: opts.verbose,
      timeline: opts.timeline,
      summary: opts.summary || opts.verbose,
      dashboard: opts.dashboard,
      signal: controller.signal,
      tls: tlsOption(opts),
    };
    result = elastic ? await launchElastic({ ...options, elastic }) : await launch(options);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`ringrun: ${err.message}\n`);
    process.exit(2);
  }
  process.exit(result.code);
});

await program.parseAsync(normalizeArgv(process.argv.slice(2), program.options), { from: 'user' });
