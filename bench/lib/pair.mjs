// The process-pair harness of the transport ceiling checks (bench/micro/tcpbw.mjs, wsbw.mjs): the
// script forks itself as two processes, 'a' and 'b', that each listen on a free port and learn
// the other's port through the parent, so no fixed port can collide with anything else running.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROLE = 'RINGBENCH_PAIR_ROLE';

/**
 * Started by hand: forks `scriptUrl` (the caller's import.meta.url) twice with the same
 * arguments, relays each one's port to the other, waits for both and exits with the first
 * non-zero code; it never returns. In a forked process: returns `{ role, peerPort }`, where
 * `listen()` is called first and resolves with the port this process listens on.
 * @param {string} scriptUrl
 * @param {() => Promise<number>} listen
 * @returns {Promise<{ role: 'a' | 'b', peerPort: number }>}
 */
export async function processPair(scriptUrl, listen) {
  const role = process.env[ROLE];
  if (role) {
    process.send({ port: await listen() });
    const peerPort = await new Promise((resolve) => process.once('message', (m) => resolve(m.port)));
    return { role, peerPort };
  }
  const file = fileURLToPath(scriptUrl);
  const kids = ['a', 'b'].map((r) =>
    fork(file, process.argv.slice(2), { env: { ...process.env, [ROLE]: r } }),
  );
  kids.forEach((k, i) => k.once('message', (m) => kids[1 - i].send(m)));
  // One that fails stops the other, which would otherwise wait for its port or its data forever.
  const codes = await Promise.all(
    kids.map(
      (k, i) =>
        new Promise((resolve) =>
          k.on('exit', (c) => {
            if (c !== 0) kids[1 - i].kill();
            resolve(c ?? 1);
          }),
        ),
    ),
  );
  process.exit(codes.find((c) => c !== 0) ?? 0);
}
