import { randomBytes } from 'node:crypto';
import { ENV, UsageError } from '@ringwire/common';
// Types only (erased at build): the compiler refuses any field the Kubernetes API does not have.
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';

/** What `ringrun k8s` needs to describe a job. */
export interface K8sJobOptions {
  /** Job name: also the headless Service's, so pod 0 is reachable as <name>-0.<name>. */
  name: string;
  /** Number of workers: completions = parallelism = np, one worker per pod. */
  np: number;
  image: string;
  /** The worker's command and arguments. */
  command: string[];
  namespace?: string;
  /** Kubernetes quantities for each pod's requests and limits, e.g. '2', '500m', '4Gi'. */
  cpu?: string;
  memory?: string;
  /** nvidia.com/gpu per pod. */
  gpus?: number;
  /** Size of the memory-backed /dev/shm (the shared-memory transport's segments live there). */
  shmSize: string;
  /** Rendezvous port rank 0 serves on (RINGWIRE_RENDEZVOUS_PORT). */
  port: number;
  /** The job token; default: 32 random hex digits. */
  token?: string;
  /** Extra environment for every worker. */
  env?: Record<string, string>;
  workingDir?: string;
  /** activeDeadlineSeconds: the job fails after this long. */
  timeoutSeconds?: number;
}

/** The container every pod runs (named in the pod failure policy). */
export const CONTAINER = 'worker';

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The objects of one ringwire job on Kubernetes, in `kubectl apply` order: the token as a Secret,
 * a headless Service whose name is the Job's (pods find rank 0 at <name>-0.<name>), and an
 * Indexed Job whose pods get their rank from JOB_COMPLETION_INDEX. Rank 0 serves the rendezvous
 * in-process; any pod that fails fails the whole Job at once (pod failure policy, no retries).
 */
export function k8sManifests(o: K8sJobOptions): [ISecret, IService, IJob] {
  // Pod hostnames are <name>-<index>: a DNS label of at most 63 characters.
  if (!DNS_LABEL.test(o.name) || o.name.length + 1 + String(o.np - 1).length > 63)
    throw new UsageError(
      `--name ${JSON.stringify(o.name)}: must be a DNS label (a-z, 0-9, '-'), short enough for "<name>-<index>"`,
    );
  if (!Number.isInteger(o.np) || o.np < 1) throw new UsageError('-np must be a positive integer');
  if (o.command.length === 0)
    throw new UsageError('missing command: ringrun k8s [options] -- command [args...]');
  const namespace = o.namespace;
  const labels = { 'app.kubernetes.io/name': 'ringwire', 'ringwire.dev/job': o.name };
  const secretName = `${o.name}-token`;
  const quantities = {
    ...(o.cpu && { cpu: o.cpu }),
    ...(o.memory && { memory: o.memory }),
    ...(o.gpus && { 'nvidia.com/gpu': String(o.gpus) }),
  };
  const secret: ISecret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName, namespace, labels },
    type: 'Opaque',
    stringData: { token: o.token ?? randomBytes(16).toString('hex') },
  };
  const service: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: o.name, namespace, labels },
    spec: {
      clusterIP: 'None',
      // Pods must find rank 0 before any of them is Ready (they have no readiness probe anyway).
      publishNotReadyAddresses: true,
      selector: labels,
      ports: [{ name: 'rendezvous', port: o.port, targetPort: o.port, protocol: 'TCP' }],
    },
  };
  const env = [
    { name: ENV.size.name, value: String(o.np) },
    { name: ENV.rendezvousPort.name, value: String(o.port) },
    { name: ENV.token.name, valueFrom: { secretKeyRef: { name: secretName, key: 'token' } } },
    ...Object.entries(o.env ?? {}).map(([name, value]) => ({ name, value })),
  ];
  const job: IJob = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: o.name, namespace, labels },
    spec: {
      completionMode: 'Indexed',
      completions: o.np,
      parallelism: o.np,
      backoffLimit: 0,
      ...(o.timeoutSeconds && { activeDeadlineSeconds: o.timeoutSeconds }),
      // A worker that exits non-zero fails the Job at once: the others cannot go on without it
      // (and have failed fast themselves, naming the lost rank).
      podFailurePolicy: {
        rules: [
          { action: 'FailJob', onExitCodes: { containerName: CONTAINER, operator: 'NotIn', values: [0] } },
          { action: 'FailJob', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        ],
      },
      template: {
        metadata: { labels },
        spec: {
          subdomain: o.name, // with the pod hostname <name>-<index>: DNS <name>-<index>.<name>
          restartPolicy: 'Never', // required by podFailurePolicy
          containers: [
            {
              name: CONTAINER,
              image: o.image,
              command: o.command,
              ...(o.workingDir && { workingDir: o.workingDir }),
              env,
              ports: [{ name: 'rendezvous', containerPort: o.port, protocol: 'TCP' }],
              ...(Object.keys(quantities).length && {
                resources: { requests: quantities, limits: quantities },
              }),
              volumeMounts: [{ name: 'dshm', mountPath: '/dev/shm' }],
            },
          ],
          volumes: [{ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: o.shmSize } }],
        },
      },
    },
  };
  return [secret, service, job];
}
