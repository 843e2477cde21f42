import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RendezvousServer } from '@ringwire/rendezvous';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// ringwire under the engines clusters use, for real: a Slurm cluster on this machine
// (../shared/slurm/setup.sh) and Debian's Open MPI. No ringrun, no separately started rendezvous.

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const JOB = fileURLToPath(new URL('./fixtures/engine-job.mjs', import.meta.url));
const TOKEN = 'ringwire-engines-test';
const dir = mkdtempSync(join(tmpdir(), 'ringwire-engines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Seeded weights, batches in order: the accuracy is the same on every run at a given size.
const TRAIN = [
  'examples/train.mjs',
  '--epochs',
  '4',
  '--train',
  '3072',
  '--test',
  '1536',
  '--seed',
  '1',
  '--fixed-order',
];

type Result = { code: number; stdout: string; stderr: string; ms: number };

/** Runs a command to its end (SIGTERM after timeoutMs); never rejects. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Result> {
  const t0 = Date.now();
  return new Promise((resolve) =>
    execFile(
      cmd,
      args,
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          stdout,
          stderr,
          ms: Date.now() - t0,
        }),
    ),
  );
}

const jsonLines = (out: string, event: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((o) => o.event === event)
    .sort((a, b) => a.rank - b.rank);

function accuracy(out: string): number {
  const m = /test accuracy ([\d.]+)%/.exec(out);
  if (!m) throw new Error(`no accuracy in:\n${out}`);
  return Number(m[1]);
}

/** Why Slurm cannot be used here, or undefined once the cluster is up. */
function slurmUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (../shared/slurm/setup.sh needs root)';
  const setup = [join(ROOT, '../shared/slurm/setup.sh'), '/work/shared/slurm/setup.sh'].find(existsSync);
  if (!setup) return 'no ../shared/slurm/setup.sh';
  const r = spawnSync(setup, [], { encoding: 'utf8', timeout: 170_000 });
  return r.status === 0 ? undefined : `setup.sh failed (${r.status}): ${r.stderr.slice(-400)}`;
}

/** Why Open MPI's mpirun cannot be used here, or undefined. */
function mpirunUnavailable(): string | undefined {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (r.error) return 'mpirun not installed (apt-get install openmpi-bin)';
  return /Open MPI/.test(r.stdout) ? undefined : `mpirun is not Open MPI: ${r.stdout.split('\n')[0]}`;
}

describe('rank 0 under an engine', () => {
  it('connects to a rendezvous that already answers at the address instead of serving one', async () => {
    const server = new RendezvousServer({ token: TOKEN, log: () => {} });
    const { port } = await server.listen();
    const formed = new Promise((resolve) => server.once('formed', resolve));
    try {
      const env = {
        ...{ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '1' },
        RINGWIRE_RENDEZVOUS_PORT: String(port),
        RINGWIRE_TOKEN: TOKEN,
      };
      const r = await run(process.execPath, [JOB], env, 30_000);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(jsonLines(r.stdout, 'allreduce')).toMatchObject([{ rank: 0, size: 1, wrong: 0 }]);
      await expect(
        Promise.race([formed, new Promise((r) => setTimeout(r, 1000, 'not formed'))]),
      ).resolves.not.toBe('not formed');
    } finally {
      await server.close();
    }
  });
});

describe('Slurm', () => {
  let skip: string | undefined;
  beforeAll(() => {
    skip = slurmUnavailable();
    if (skip) console.log(`SKIP Slurm tests: ${skip}`);
  }, 180_000);
  // Job names let afterAll cancel only this file's jobs if a test times out.
  const NAME = `ringwire-test-${process.pid}`;
  afterAll(() => void (skip || spawnSync('scancel', ['--name', NAME])));
  const srun = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 150_000) =>
    run('srun', [`--job-name=${NAME}`, '--time=5', ...args], { RINGWIRE_TOKEN: TOKEN, ...env }, timeoutMs);

  it('srun -n 3 node examples/train.mjs trains to the usual accuracy', async (ctx) => {
    if (skip) return ctx.skip();
    const r = await srun(['-n', '3', 'node', ...TRAIN]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 rank\(s\), 1024 training images per rank/);
    expect(accuracy(r.stdout)).toBeGreaterThan(75);
  }, 160_000);

  it('examples/slurm/train.sbatch trains to the usual accuracy', async (ctx) => {
    if (skip) return ctx.skip();
    const out = join(dir, 'sbatch-%j.out');
    const r = await run(
      'sbatch',
      [
        '--wait',
        `--job-name=${NAME}`,
        '--ntasks=2',
        `--output=${out}`,
        'examples/slurm/train.sbatch',
        ...TRAIN.slice(1),
      ],
      { RINGWIRE_TOKEN: '' }, // the script makes its own
      150_000,
    );
    const jobId = /Submitted batch job (\d+)/.exec(r.stdout)?.[1];
    const log = jobId ? readFileSync(out.replace('%j', jobId), 'utf8') : '';
    expect(r.code, r.stdout + r.stderr + log).toBe(0);
    expect(log).toMatch(/2 rank\(s\), 1536 training images per rank/);
    expect(accuracy(log)).toBeGreaterThan(75);
  }, 160_000);

  it('a task that dies makes the others fail fast, naming it, and srun exit non-zero (ranks across "nodes")', async (ctx) => {
    if (skip) return ctx.skip();
    // RINGWIRE_LOCAL_SIZE=1 makes each task believe it is alone on its node: the rendezvous
    // address then comes from the node list (this node's name), as on a real multi-node job.
    const r = await srun(
      ['-n', '3', 'env', 'RINGWIRE_LOCAL_SIZE=1', 'RR_KILL_RANK=1', 'node', JOB],
      {},
      60_000,
    );
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    const failed = jsonLines(r.stdout, 'failed');
    expect(
      failed.map((f) => [f.rank, f.code, f.lost]),
      r.stdout + r.stderr,
    ).toEqual([
      [0, 'RINGWIRE_ERR_PEER_LOST', 1],
      [2, 'RINGWIRE_ERR_PEER_LOST', 1],
    ]);
    for (const f of failed) expect(f.ms).toBeLessThan(10_000);
    expect(r.ms).toBeLessThan(45_000);
  }, 70_000);

  it('without a token, every task fails at once saying how to pass one with srun', async (ctx) => {
    if (skip) return ctx.skip();
    const r = await srun(['-n', '2', 'node', JOB], { RINGWIRE_TOKEN: '' }, 60_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no job token under slurm: .*export RINGWIRE_TOKEN=.* before srun or sbatch/);
  }, 70_000);
});

describe('mpirun (Open MPI)', () => {
  const skip = mpirunUnavailable();
  if (skip) console.log(`SKIP mpirun tests: ${skip}`);
  // As root Open MPI needs --allow-run-as-root; 3 ranks on 2 cores need --oversubscribe.
  const mpirun = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 150_000) =>
    run(
      'mpirun',
      [
        ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
        '--oversubscribe',
        '-x',
        'RINGWIRE_TOKEN',
        ...args,
      ],
      { RINGWIRE_TOKEN: TOKEN, ...env },
      timeoutMs,
    );

  it.skipIf(skip)(
    'mpirun -np 3 -x RINGWIRE_TOKEN node examples/train.mjs trains',
    async () => {
      const r = await mpirun(['-np', '3', 'node', ...TRAIN]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/3 rank\(s\), 1024 training images per rank/);
      expect(accuracy(r.stdout)).toBeGreaterThan(75);
    },
    160_000,
  );

  it.skipIf(skip)(
    'a killed rank ends the job: the others fail fast naming it, mpirun exits non-zero',
    async () => {
      const r = await mpirun(['-np', '3', '-x', 'RR_KILL_RANK=2', 'node', JOB], {}, 60_000);
      expect(r.code, r.stdout + r.stderr).not.toBe(0);
      const ok = jsonLines(r.stdout, 'allreduce');
      expect(ok.map((o) => [o.rank, o.size, o.localRank, o.wrong])).toEqual([
        [0, 3, 0, 0],
        [1, 3, 1, 0],
        [2, 3, 2, 0],
      ]);
      // mpirun may stop the survivors itself once a rank dies; those that report name rank 2.
      for (const f of jsonLines(r.stdout, 'failed'))
        expect([f.code, f.lost, f.ms < 10_000]).toEqual(['RINGWIRE_ERR_PEER_LOST', 2, true]);
      expect(r.ms).toBeLessThan(45_000);
    },
    70_000,
  );
});
