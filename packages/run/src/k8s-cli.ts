import { writeFileSync } from 'node:fs';
import { InvalidArgumentError as CliArgError, Command } from 'commander';
import { stringify } from 'yaml';
import { UsageError } from './hosts.js';
import { k8sManifests } from './k8s.js';

const positiveInt = (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new CliArgError('must be a positive integer');
  return Number(v);
};
const port = (v: string) => {
  const n = positiveInt(v);
  if (n > 65535) throw new CliArgError('must be a port number');
  return n;
};
const quantity = (v: string) => {
  if (!/^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/.test(v))
    throw new CliArgError('must be a Kubernetes quantity');
  return v;
};
const assignment = (v: string, list: Record<string, string> = {}) => {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(v);
  if (!m) throw new CliArgError('must be VAR=value');
  return { ...list, [m[1]]: m[2] };
};

const HELP = `
Writes a Secret (the job token), a headless Service and an Indexed Job, as YAML documents ready
for kubectl apply -f. Each pod runs one worker: its rank is JOB_COMPLETION_INDEX, the size
RINGWIRE_SIZE, and rank 0 serves the rendezvous in-process at <name>-0.<name>:<port>. A pod that
fails fails the Job at once. The token is random unless --token is given; the Secret holds it.

Example:
  ringrun k8s --name digits -np 4 --image registry.example/digits:1 --cpu 2 --memory 2Gi \\
    -o job.yaml -- node examples/train.mjs --epochs 6
  kubectl apply -f job.yaml && kubectl logs -f job/digits
`;

/** `ringrun k8s`: writes the Kubernetes manifests of a job. */
export const k8sCommand = new Command('k8s')
  .description('write the Kubernetes manifests (Secret, headless Service, Indexed Job) of a job')
  .usage('[options] -- command [args...]')
  .requiredOption('--name <name>', 'Job and Service name (a DNS label)')
  .requiredOption('-n, --np <n>', 'number of workers, one per pod (also -np)', positiveInt)
  .requiredOption('--image <image>', 'container image holding node, ringwire and the program')
  .option('--namespace <ns>', 'namespace of every object')
  .option('--cpu <q>', 'CPU request and limit per pod, e.g. 2 or 500m', quantity)
  .option('--memory <q>', 'memory request and limit per pod, e.g. 4Gi', quantity)
  .option('--gpus <n>', 'nvidia.com/gpu per pod', positiveInt)
  .option('--shm-size <q>', 'size of the memory-backed /dev/shm', quantity, '1Gi')
  .option('--port <port>', 'rendezvous port (RINGWIRE_RENDEZVOUS_PORT)', port, 29400)
  .option('--token <token>', 'job token to put in the Secret (default: random)')
  .option('-x <VAR=value>', 'environment variable for every worker (repeatable)', assignment)
  .option('--workdir <dir>', 'working directory of the command')
  .option('--timeout <s>', 'the Job fails after this many seconds (activeDeadlineSeconds)', positiveInt)
  .option('-o, --output <file>', 'write here instead of stdout')
  .argument('<command...>')
  .addHelpText('after', HELP)
  .exitOverride((e) => process.exit(e.code === 'commander.helpDisplayed' ? 0 : 2))
  .action((command: string[], o) => {
    try {
      write(command, o);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      process.stderr.write(`ringrun k8s: ${err.message}\n`);
      process.exit(2);
    }
  });

function write(command: string[], o: Record<string, never>): void {
  const docs = k8sManifests({
    name: o.name,
    np: o.np,
    image: o.image,
    command,
    namespace: o.namespace,
    cpu: o.cpu,
    memory: o.memory,
    gpus: o.gpus,
    shmSize: o.shmSize,
    port: o.port,
    token: o.token,
    env: o.x,
    workingDir: o.workdir,
    timeoutSeconds: o.timeout,
  });
  const yaml = docs.map((d) => stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
  if (o.output)
    writeFileSync(o.output, yaml, { mode: 0o600 }); // it holds the token
  else process.stdout.write(yaml);
}
