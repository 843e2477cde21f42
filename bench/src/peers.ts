import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The peers `ringbench compare` measures, all running the same float32 sum all-reduce sweep. */
export const PEERS = ['gloo', 'mpi-tcp', 'mpi-sm'] as const;
export type Peer = (typeof PEERS)[number];

export interface PeerRow {
  bytes: number;
  time_us: number;
  busbw_GBps: number;
}

/** The peer programs live beside the project, in ../shared/peers (as CI and developers have them). */
function peersDir(): string {
  for (const d of [process.env.RINGBENCH_PEERS, resolve(process.cwd(), '../shared/peers'), resolve(process.cwd(), 'shared/peers')]) {
    if (d && existsSync(join(d, 'gloo_allreduce.py'))) return d;
  }
  throw new Error('cannot find the peer programs (gloo_allreduce.py, mpi_allreduce.c): set RINGBENCH_PEERS to their folder');
}

/** Why a peer cannot run here, with the command that fixes it; undefined when it can. */
export function missing(peer: Peer): string | undefined {
  if (peer === 'gloo') {
    const ok = spawnSync('/usr/bin/python3', ['-c', 'import torch.distributed as d; assert d.is_gloo_available()'], { stdio: 'ignore' }).status === 0;
    return ok ? undefined : 'Gloo needs Debian\'s PyTorch: apt-get install -y python3-torch';
  }
  const ok = spawnSync('mpicc', ['--version'], { stdio: 'ignore' }).status === 0 && spawnSync('mpirun', ['--version'], { stdio: 'ignore' }).status === 0;
  return ok ? undefined : 'Open MPI is not installed: apt-get install -y openmpi-bin libopenmpi-dev';
}

function mpiBinary(): string {
  const dir = join(tmpdir(), 'ringbench-peers');
  const bin = join(dir, 'mpi_allreduce');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    execFileSync('mpicc', ['-O2', '-o', bin, join(peersDir(), 'mpi_allreduce.c')]);
  }
  return bin;
}

const sizeArg = (sizes: number[]) => sizes.map((b) => `${b}`).join(',');

/** Runs one peer's sweep; the programs print CSV: peer,world,bytes,iters,median,min,max,algbw,busbw,correct. */
export function runPeer(peer: Peer, np: number, sizes: number[]): PeerRow[] {
  const out = peer === 'gloo'
    ? execFileSync('/usr/bin/python3', [join(peersDir(), 'gloo_allreduce.py'), '--world', String(np), '--sizes', sizeArg(sizes)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 24 })
    : execFileSync('mpirun', ['--allow-run-as-root', '--oversubscribe', '-np', String(np), '--mca', 'pml', 'ob1',
        ...(peer === 'mpi-tcp' ? ['--mca', 'btl', 'tcp,self', '--mca', 'btl_tcp_if_include', 'lo'] : ['--mca', 'btl', 'vader,self']),
        mpiBinary(), '--label', peer, '--sizes', sizeArg(sizes)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 24 });
  return out.trim().split('\n').slice(1).map((l) => l.split(',')).filter((c) => c.length >= 9)
    .map((c) => ({ bytes: Number(c[2]), time_us: Number(c[4]), busbw_GBps: Number(c[8]) }));
}
