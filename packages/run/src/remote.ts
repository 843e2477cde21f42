import { shellQuote as q } from './shell.js';

/**
 * The remote side of an ssh-started worker, run by `sh` on the remote host.
 *
 * ssh without a tty (`-tt` is not used: it mangles output and merges stderr) never signals the
 * remote command when the connection ends, so the wrapper ties the worker's life to ssh's
 * stdin instead. ringrun keeps that pipe open and never writes to it after the token; it
 * closes when ringrun ends the worker on purpose, exits, is killed, or loses the network. A
 * watcher then sends SIGTERM to the session's process group (sshd starts each session in its
 * own) and SIGKILL after the grace period. The worker runs in the foreground so it keeps
 * normal signal dispositions (a background job of `sh` would ignore SIGINT), and the shell
 * traps TERM with a no-op so it outlives the worker and reports its status (128+n for a signal).
 *
 * The token arrives as the first line on stdin, not on the command line, so `ps` on either
 * host does not show it.
 */
export function remoteScript(cwd: string, env: Record<string, string>, graceMs: number): string {
  const exports = Object.entries(env).map(([k, v]) => `export ${k}=${q(v)}`);
  const ticks = Math.max(1, Math.ceil(graceMs / 100)); // of 0.1 s
  return [
    'exec 3<&0 </dev/null',
    'IFS= read -r RINGWIRE_TOKEN <&3 || exit 125',
    'export RINGWIRE_TOKEN',
    `cd -- ${q(cwd)} || exit 126`,
    ...exports,
    // $$ is the main shell: it outlives the worker, so once it is gone only leftovers remain.
    `(trap '' TERM; while read -r _ <&3; do :; done; kill -TERM 0; i=0; while kill -0 $$ && [ $i -lt ${ticks} ]; do sleep 0.1; i=$((i+1)); done; kill -KILL 0) >/dev/null 2>&1 &`,
    'w=$!',
    'trap : TERM',
    '"$@" 3<&-',
    'rc=$?',
    'kill -KILL "$w" 2>/dev/null',
    // Whatever the worker left in its process group goes with it.
    "trap '' TERM; kill -TERM 0 2>/dev/null",
    'exit "$rc"',
  ].join('\n');
}

/** The single string ssh hands to the remote login shell. */
export function remoteCommand(
  cwd: string,
  env: Record<string, string>,
  graceMs: number,
  command: string,
  args: string[],
): string {
  return `exec sh -c ${q(remoteScript(cwd, env, graceMs))} ringrun ${[command, ...args].map(q).join(' ')}`;
}

/**
 * A detached watchdog process: ringrun tells it, one line each on its stdin, which process
 * groups it started or found under a worker (`+pid`) and which are gone (`-pid`). If the pipe closes while groups are
 * still listed, ringrun died without cleaning up (SIGKILL, a crash): the watchdog stops them,
 * SIGTERM then SIGKILL after the grace period. Stopping an ssh client this way closes its
 * session, which in turn stops the remote worker (see remoteScript).
 */
export function watchdogSource(graceMs: number): string {
  return `
const groups = new Set();
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  const lines = (buf + d).split('\\n');
  buf = lines.pop();
  for (const l of lines) l[0] === '-' ? groups.delete(l.slice(1)) : groups.add(l.slice(1));
});
process.stdin.on('end', () => {
  const kill = (sig) => { for (const g of groups) try { process.kill(-Number(g), sig); } catch {} };
  if (!groups.size) return;
  kill('SIGTERM');
  setTimeout(() => kill('SIGKILL'), ${Math.max(0, Math.round(graceMs))});
});`;
}
