// The spawn-ranks harness of the bench scripts: a script started by hand runs itself as NP local
// ranks through @ringwire/run's launch() (as `ringrun -np NP node script ...` would: its own
// rendezvous, a random job id, workers stopped if the launcher dies); under ringrun it just runs.
import { fileURLToPath } from 'node:url';

/** The `np` option (bench/lib/args.mjs) of the scripts that start their own ranks: `script.mjs 4`. */
export const NP_OPTION = {
  type: 'number',
  positional: true,
  default: 2,
  help: 'ranks, started on this machine',
};

/** Removes launch()'s `[rank] ` tag from the start of every line of a chunk of whole lines. */
const untag = (text) => text.replace(/^\[\d+\] /gm, '');

/**
 * In a rank (RINGWIRE_RANK set, e.g. under ringrun) returns at once. Started by hand: relaunches
 * `scriptUrl` (the caller's import.meta.url) with the same arguments as `np` ranks, waits for
 * them, and exits with the job's code (0 when every rank succeeded); it never returns.
 * @param {string} scriptUrl
 * @param {number} np
 * @param {{ tagged?: boolean, announce?: boolean }} [how] tagged: keep ringrun's `[rank] ` line
 *   prefix (default: lines come out as the ranks print them); announce: first print the
 *   equivalent `# ringrun -np ...` command line
 */
export async function runAsRanks(scriptUrl, np, { tagged = false, announce = false } = {}) {
  if (process.env.RINGWIRE_RANK !== undefined) return;
  const { launch } = await import('@ringwire/run');
  const file = fileURLToPath(scriptUrl);
  const args = process.argv.slice(2);
  if (announce)
    console.log(
      `# ringrun -np ${np} node ${file.slice(process.cwd().length + 1)} ${args.join(' ')}`.trimEnd(),
    );
  const sink = (stream) => (tagged ? stream : { write: (text) => stream.write(untag(text)) });
  const { code } = await launch({
    command: process.execPath,
    args: [file, ...args],
    np,
    stdout: sink(process.stdout),
    stderr: sink(process.stderr),
  });
  process.exit(code);
}
