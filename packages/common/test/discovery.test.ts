import { defaultRendezvousPort, discover, parseSlurmNodeList, parseTasksPerNode } from '@ringwire/common';
import { describe, expect, it } from 'vitest';

// Real environments, trimmed to the variables that matter (captured from srun, mpirun, sbatch here).
const SRUN = {
  SLURM_JOB_ID: '42',
  SLURM_STEP_ID: '0',
  SLURM_PROCID: '1',
  SLURM_NTASKS: '3',
  SLURM_LOCALID: '1',
  SLURM_NODEID: '0',
  SLURM_STEP_TASKS_PER_NODE: '3',
  SLURM_STEP_NODELIST: 'vm',
  SLURM_JOB_NODELIST: 'vm',
};
const OMPI = {
  OMPI_COMM_WORLD_RANK: '2',
  OMPI_COMM_WORLD_SIZE: '3',
  OMPI_COMM_WORLD_LOCAL_RANK: '2',
  OMPI_COMM_WORLD_LOCAL_SIZE: '3',
  OMPI_MCA_ess_base_jobid: '895614977',
};

describe('discover', () => {
  it('with nothing set: size 1, no rank, no engine', () => {
    expect(discover({})).toEqual({ engine: 'none', size: 1, jobId: 'default', mayServe: false });
  });

  it('RINGWIRE_* wins over every engine, and is not cross-checked (ringrun inside sbatch or srun)', () => {
    const d = discover({
      ...SRUN,
      ...OMPI,
      RINGWIRE_RANK: '1',
      RINGWIRE_SIZE: '2',
      RINGWIRE_RENDEZVOUS: 'ws://h:1',
      RINGWIRE_JOB_ID: 'j',
    });
    expect(d).toMatchObject({
      engine: 'ringwire',
      rank: 1,
      size: 2,
      rendezvous: 'ws://h:1',
      jobId: 'j',
      mayServe: false,
    });
  });

  it('Open MPI on one host: loopback rendezvous, job id and port from the engine', () => {
    const d = discover(OMPI);
    const jobId = 'openmpi-895614977';
    expect(d).toEqual({
      engine: 'openmpi',
      rank: 2,
      size: 3,
      localRank: 2,
      localSize: 3,
      jobId,
      rendezvous: `ws://127.0.0.1:${defaultRendezvousPort(jobId)}`,
      mayServe: false,
    });
    expect(discover({ ...OMPI, OMPI_COMM_WORLD_RANK: '0' }).mayServe).toBe(true);
  });

  it('Open MPI across hosts without RINGWIRE_RENDEZVOUS: refused, saying how to pass it with mpirun', () => {
    expect(() => discover({ ...OMPI, OMPI_COMM_WORLD_LOCAL_SIZE: '1' })).toThrow(
      /openmpi does not say where rank 0 runs .*mpirun -x RINGWIRE_RENDEZVOUS=ws:/,
    );
    const d = discover({ ...OMPI, OMPI_COMM_WORLD_LOCAL_SIZE: '1', RINGWIRE_RENDEZVOUS: 'ws://node1:9' });
    expect(d).toMatchObject({ engine: 'openmpi', rendezvous: 'ws://node1:9' });
  });

  it('MPICH / Hydra', () => {
    const d = discover({
      PMI_RANK: '0',
      PMI_SIZE: '2',
      MPI_LOCALRANKID: '0',
      MPI_LOCALNRANKS: '2',
      PMI_KVSNAME: 'kvs_7_0',
    });
    expect(d).toMatchObject({
      engine: 'mpich',
      rank: 0,
      size: 2,
      localRank: 0,
      localSize: 2,
      jobId: 'mpich-kvs_7_0',
      mayServe: true,
    });
  });

  it('a Slurm step: rank, local size from tasks per node, first node of the step, RINGWIRE_RENDEZVOUS_PORT', () => {
    const multi = {
      ...SRUN,
      SLURM_PROCID: '4',
      SLURM_NTASKS: '5',
      SLURM_LOCALID: '0',
      SLURM_NODEID: '2',
      SLURM_STEP_TASKS_PER_NODE: '2(x2),1',
      SLURM_STEP_NODELIST: 'gpu[07-09]',
      RINGWIRE_RENDEZVOUS_PORT: '5000',
    };
    expect(discover(multi)).toEqual({
      engine: 'slurm',
      rank: 4,
      size: 5,
      localRank: 0,
      localSize: 1,
      jobId: 'slurm-42.0',
      rendezvous: 'ws://gpu07:5000',
      mayServe: false,
    });
    expect(discover(SRUN)).toMatchObject({
      localSize: 3,
      rendezvous: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:/),
    });
  });

  it('a Slurm batch script (no SLURM_STEP_ID) does not place the processes it starts', () => {
    const batch = { SLURM_JOB_ID: '2', SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_LOCALID: '0' };
    expect(discover(batch).engine).toBe('none');
    // mpirun inside sbatch: every rank inherits SLURM_PROCID=0, Open MPI decides.
    expect(discover({ ...batch, ...OMPI })).toMatchObject({ engine: 'openmpi', rank: 2 });
  });

  it('a Kubernetes Indexed Job: index + RINGWIRE_SIZE, pod 0 of the headless Service named after the Job', () => {
    const d = discover({
      JOB_COMPLETION_INDEX: '3',
      RINGWIRE_SIZE: '4',
      HOSTNAME: 'train-3',
      RINGWIRE_RENDEZVOUS_PORT: '29400',
    });
    expect(d).toEqual({
      engine: 'kubernetes',
      rank: 3,
      size: 4,
      localRank: 0,
      localSize: 1,
      jobId: 'kubernetes-train',
      rendezvous: 'ws://train-0.train:29400',
      mayServe: false,
    });
    expect(() => discover({ JOB_COMPLETION_INDEX: '3', RINGWIRE_SIZE: '4', HOSTNAME: 'x' })).toThrow(
      /kubernetes does not say where rank 0 runs/,
    );
  });

  it.each([
    [
      { OMPI_COMM_WORLD_RANK: '1' },
      /partial openmpi environment: OMPI_COMM_WORLD_RANK=1, OMPI_COMM_WORLD_SIZE=\(unset\)/,
    ],
    [{ PMI_SIZE: '2' }, /partial mpich environment: PMI_RANK=\(unset\), PMI_SIZE=2/],
    [{ SLURM_STEP_ID: '0', SLURM_PROCID: '0' }, /partial slurm environment.*SLURM_NTASKS=\(unset\)/],
    [{ JOB_COMPLETION_INDEX: '0' }, /JOB_COMPLETION_INDEX is set .* RINGWIRE_SIZE is not/],
    [
      { OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '3' },
      /openmpi rank is outside the size: OMPI_COMM_WORLD_RANK=3/,
    ],
    [{ PMI_RANK: '0', PMI_SIZE: '0' }, /mpich says the job has no workers: PMI_RANK=0, PMI_SIZE=0/],
    [
      { OMPI_COMM_WORLD_RANK: 'x', OMPI_COMM_WORLD_SIZE: '3' },
      /OMPI_COMM_WORLD_RANK must be an integer >= 0, got "x"/,
    ],
    [
      { ...OMPI, PMI_RANK: '1', PMI_SIZE: '3' },
      /openmpi and mpich disagree: OMPI_COMM_WORLD_RANK=2, .* vs PMI_RANK=1/,
    ],
    [{ ...OMPI, PMI_RANK: '2', PMI_SIZE: '4' }, /openmpi and mpich disagree/],
    [{ ...OMPI, ...SRUN }, /openmpi and slurm disagree: .* vs SLURM_PROCID=1, SLURM_NTASKS=3/],
    [{ ...OMPI, RINGWIRE_SIZE: '4' }, /RINGWIRE_SIZE=4 disagrees with openmpi: OMPI_COMM_WORLD_RANK=2/],
    [{ RINGWIRE_RANK: '2', RINGWIRE_SIZE: '2' }, /RINGWIRE_RANK=2 is outside RINGWIRE_SIZE=2/],
    [{ ...SRUN, SLURM_STEP_TASKS_PER_NODE: '2(y3)' }, /malformed Slurm tasks per node/],
    [
      { ...SRUN, SLURM_STEP_NODELIST: 'n[1-', SLURM_STEP_TASKS_PER_NODE: '1(x3)' },
      /malformed Slurm node list/,
    ],
  ])('refuses %j', (env, message) => {
    expect(() => discover(env)).toThrow(
      expect.objectContaining({ code: 'RINGWIRE_ERR_INVALID_ARG', message: expect.stringMatching(message) }),
    );
  });

  it('agreeing engines are fine: srun --mpi=pmi2 sets PMI_* and SLURM_* together; mpirun inside srun -n 1', () => {
    expect(discover({ ...SRUN, PMI_RANK: '1', PMI_SIZE: '3' })).toMatchObject({ engine: 'mpich', rank: 1 });
    expect(discover({ ...SRUN, SLURM_PROCID: '0', SLURM_NTASKS: '1', ...OMPI })).toMatchObject({
      engine: 'openmpi',
    });
  });

  it('the default port is stable per job and spread across jobs', () => {
    expect(defaultRendezvousPort('slurm-42.0')).toBe(defaultRendezvousPort('slurm-42.0'));
    const ports = new Set(Array.from({ length: 50 }, (_, i) => defaultRendezvousPort(`slurm-${i}.0`)));
    expect(ports.size).toBeGreaterThan(45);
    for (const p of ports) expect(p >= 29400 && p < 30400).toBe(true);
  });
});

describe('Slurm lists', () => {
  it.each([
    ['vm', ['vm']],
    ['node[01-03,07],gpu5', ['node01', 'node02', 'node03', 'node07', 'gpu5']],
    ['a[8-10]', ['a8', 'a9', 'a10']],
    ['r[1-2]n[01-02]', ['r1n01', 'r1n02', 'r2n01', 'r2n02']],
    ['x-[1,3]-y,z', ['x-1-y', 'x-3-y', 'z']],
  ])('node list %s', (list, hosts) => expect(parseSlurmNodeList(list)).toEqual(hosts));

  it.each(['', 'n[1-', 'n]', 'n[3-1]', 'n[a]'])('refuses node list %j', (list) =>
    expect(() => parseSlurmNodeList(list)).toThrow(/Slurm node list/),
  );

  it('tasks per node', () => {
    expect(parseTasksPerNode('2(x3),1')).toEqual([2, 2, 2, 1]);
    expect(parseTasksPerNode('4')).toEqual([4]);
  });
});
