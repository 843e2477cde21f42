// Runs the calling script as NP local ranks under an embedded rendezvous, when it is not a rank
// itself. Returns true in the launcher (which has waited for the ranks), false in a rank.
import { spawn } from 'node:child_process';
import { RendezvousServer } from '@ringwire/rendezvous';

export async function launchedRanks(script, np, jobId) {
  if (process.env.RINGWIRE_RANK !== undefined) return false;
  const s = new RendezvousServer({ log: () => {} });
  const { url } = await s.listen();
  const ps = Array.from({ length: np }, (_, r) =>
    spawn(process.execPath, [script], {
      stdio: 'inherit',
      env: {
        ...process.env,
        RINGWIRE_RANK: r,
        RINGWIRE_SIZE: np,
        RINGWIRE_RENDEZVOUS: url,
        RINGWIRE_JOB_ID: jobId,
      },
    }),
  );
  await Promise.all(ps.map((p) => new Promise((r) => p.on('exit', r))));
  await s.close();
  return true;
}
