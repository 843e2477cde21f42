import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ALLREDUCE, CLI } from './helpers.js';

// No cluster here: the manifests are checked against the Kubernetes API schemas
// (kubernetes-models) and their pods are run as local processes with exactly the environment
// the manifests give them, plus what Kubernetes itself adds (JOB_COMPLETION_INDEX, HOSTNAME);
// the Service's names resolve to loopback.

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DNS = fileURLToPath(new URL('./fixtures/k8s-dns.mjs', import.meta.url));
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ringwire-k8s-'));
const live = new Set<ChildProcess>();

afterEach(() => {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, checked by the schemas and the expectations
type Obj = Record<string, any>;

async function ringrunK8s(args: string[]): Promise<Obj[]> {
  const out = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  await run(process.execPath, [CLI, 'k8s', '-o', out, ...args], { timeout: 20_000 });
  return parseAllDocuments(readFileSync(out, 'utf8')).map((d) => d.toJS());
}

/** Validates an object against the Kubernetes schema of its kind; throws with the schema errors. */
function validate(o: Obj): void {
  const Model = { Secret, Service, Job }[o.kind as 'Secret' | 'Service' | 'Job'];
  expect(Model, `unexpected kind ${o.kind}`).toBeDefined();
  new Model(o as never).validate();
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** The environment the kubelet gives pod `index` of the Indexed Job: the container's env, resolved. */
function podEnv(job: Obj, secret: Obj, index: number): Record<string, string> {
  const [container] = job.spec.template.spec.containers;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin', // the image's own
    HOSTNAME: `${job.metadata.name}-${index}`,
    JOB_COMPLETION_INDEX: String(index),
  };
  for (const e of container.env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else {
      const ref = e.valueFrom.secretKeyRef;
      expect(ref.name).toBe(secret.metadata.name);
      env[e.name] = secret.stringData[ref.key];
    }
  }
  return env;
}

describe('ringrun k8s', () => {
  it('writes a Secret, a headless Service and an Indexed Job that the Kubernetes schemas accept', async () => {
    const docs = await ringrunK8s([
      '--name',
      'digits',
      '-np',
      '4',
      '--image',
      'registry.example/digits:1',
      '--cpu',
      '1500m',
      '--memory',
      '2Gi',
      '--gpus',
      '1',
      '--shm-size',
      '512Mi',
      '--namespace',
      'ml',
      '-x',
      'RINGWIRE_LOG_LEVEL=info',
      '--',
      'node',
      'examples/train.mjs',
      '--epochs',
      '3',
    ]);
    expect(docs.map((d) => d.kind)).toEqual(['Secret', 'Service', 'Job']);
    for (const d of docs) validate(d);
    const [secret, service, job] = docs;
    expect(secret.stringData.token).toMatch(/^[0-9a-f]{32}$/);
    expect(service.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(service.spec.selector).toEqual(job.spec.template.metadata.labels);
    expect(job.spec).toMatchObject({
      completionMode: 'Indexed',
      completions: 4,
      parallelism: 4,
      backoffLimit: 0,
    });
    expect(job.spec.podFailurePolicy.rules[0]).toEqual({
      action: 'FailJob',
      onExitCodes: { containerName: 'worker', operator: 'NotIn', values: [0] },
    });
    const pod = job.spec.template.spec;
    expect(pod).toMatchObject({ subdomain: 'digits', restartPolicy: 'Never' });
    const [c] = pod.containers;
    expect(c.command).toEqual(['node', 'examples/train.mjs', '--epochs', '3']);
    expect(c.resources.limits).toEqual({ cpu: '1500m', memory: '2Gi', 'nvidia.com/gpu': '1' });
    expect(c.volumeMounts).toEqual([{ name: 'dshm', mountPath: '/dev/shm' }]);
    expect(pod.volumes).toEqual([{ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '512Mi' } }]);
    for (const d of docs) expect(d.metadata.namespace).toBe('ml');
    // The schemas do catch what is wrong (the validation above is not vacuous).
    expect(() => validate({ ...job, spec: { ...job.spec, completionMode: 'indexed' } })).toThrow(
      /completionMode/,
    );
  });

  it('refuses a name that is not a DNS label, with exit 2', async () => {
    const err = await run(
      process.execPath,
      [CLI, 'k8s', '--name', 'Bad_Name', '-np', '2', '--image', 'i', 'node'],
      {
        timeout: 20_000,
      },
    ).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/--name "Bad_Name": must be a DNS label/);
  });

  it('examples/k8s/train.yaml is what ringrun k8s writes for the example', async () => {
    const example = parseAllDocuments(readFileSync(join(ROOT, 'examples/k8s/train.yaml'), 'utf8')).map((d) =>
      d.toJS(),
    );
    const { token } = example[0].stringData;
    // The README's command, with the placeholder token instead of a random one.
    const readme = readFileSync(join(ROOT, 'examples/k8s/README.md'), 'utf8').replace(/\\\n/g, ' ');
    const [, before, after] =
      /ringrun k8s (.*?) -o train\.yaml --token "\$\(openssl rand -hex 16\)" (-- .*)/.exec(readme)!;
    const docs = await ringrunK8s([...`${before} --token ${token} ${after}`.split(/\s+/).filter(Boolean)]);
    expect(example).toEqual(docs);
    for (const d of example) validate(d);
  });

  it("the job's pods, run as local processes with the manifests' environment, join and all-reduce to completion", async () => {
    const port = await freePort();
    const np = 3;
    const [secret, , job] = await ringrunK8s([
      '--name',
      'rw-test',
      '-np',
      String(np),
      '--image',
      'local',
      '--port',
      String(port),
      '--',
      'node',
      ALLREDUCE,
    ]);
    const [container] = job.spec.template.spec.containers;
    const preload = `${pathToFileURL(DNS).href}?domain=${job.metadata.name}`;
    const pods = Array.from({ length: np }, (_, i) => {
      const [cmd, ...args] = container.command;
      expect(cmd).toBe('node');
      const child = spawn(process.execPath, ['--import', preload, ...args], {
        cwd: ROOT,
        env: podEnv(job, secret, i),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      live.add(child);
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const code = new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 128)));
      return { code, output: () => out };
    });
    const codes = await Promise.all(pods.map((p) => p.code));
    const outputs = pods.map((p) => p.output());
    expect(codes, outputs.join('\n')).toEqual([0, 0, 0]);
    const results = outputs.map((o) => JSON.parse(o.split('\n').find((l) => l.includes('"allreduce"'))!));
    expect(results.map((r) => [r.rank, r.size, r.wrong])).toEqual([
      [0, 3, 0],
      [1, 3, 0],
      [2, 3, 0],
    ]);
  }, 60_000);
});
