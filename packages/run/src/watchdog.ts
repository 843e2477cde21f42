import { type ChildProcess, spawn } from 'node:child_process';
import { watchdogSource } from './remote.js';
import { type ProcessTree, scanTrees } from './tree.js';

/**
 * The detached watchdog process (see watchdogSource) and the process groups it is told about:
 * the workers' own groups, and groups their descendants lead (found by `scan`). It survives
 * ringrun being SIGKILLed and then stops them all.
 */
export class Watchdog {
  private readonly proc: ChildProcess;
  /** Group leaders found under the workers, told to the watchdog. */
  private readonly watched = new Set<number>();

  constructor(graceMs: number) {
    this.proc = spawn(process.execPath, ['-e', watchdogSource(graceMs)], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    this.proc.stdin!.on('error', () => {});
    this.proc.unref();
    (this.proc.stdin as unknown as { unref?: () => void }).unref?.();
  }

  /** A process group to stop if ringrun dies. */
  add(pid: number): void {
    this.proc.stdin!.write(`+${pid}\n`);
  }

  /** A group that is gone. */
  remove(pid: number): void {
    this.proc.stdin!.write(`-${pid}\n`);
  }

  /** Brings the trees up to date; the group leaders among their descendants become the watchdog's too. */
  scan(trees: ProcessTree[]): void {
    scanTrees(trees);
    const leaders = new Set(trees.flatMap((t) => t.leaders()));
    for (const pid of leaders) if (!this.watched.has(pid)) this.watched.add(pid), this.add(pid);
    for (const pid of this.watched) if (!leaders.has(pid)) this.watched.delete(pid), this.remove(pid);
  }

  /** Everything has ended on purpose: the watchdog exits without stopping anything. */
  close(): void {
    for (const pid of this.watched) this.remove(pid);
    this.proc.stdin!.end();
  }
}
