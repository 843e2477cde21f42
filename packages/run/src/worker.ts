import { type ChildProcess, spawn } from 'node:child_process';
import { removeRegionsOf } from 'ringwire';
import { type LineSink, LineTagger } from './output.js';
import { remoteCommand } from './remote.js';
import { killGroup, ProcessTree, scanTrees } from './tree.js';
import type { Watchdog } from './watchdog.js';

/** What every worker of a job is started with. */
export interface WorkerContext {
  command: string;
  args: string[];
  cwd: string;
  /** A local worker's whole environment, before its own variables. */
  localEnv: NodeJS.ProcessEnv;
  /** The `-x` variables: all a remote worker gets besides its own. */
  extraEnv: Record<string, string>;
  /** The job's credential: in the environment here, on ssh's stdin for remote workers. */
  token: string;
  ssh: string[];
  graceMs: number;
  out: LineSink;
  err: LineSink;
  watchdog: Watchdog;
}

/** How a worker ended. */
export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: Error;
  /** ringrun had told it to stop before it ended. */
  stopped: boolean;
}

/**
 * One worker process, here or over ssh (see remoteScript), in its own process group, its
 * output tagged `[tag] ` line by line. `onExit` is called as soon as it exits; `closed`
 * resolves once its output has been written out too.
 */
export class WorkerProcess {
  readonly child: ChildProcess;
  readonly tree?: ProcessTree;
  exited = false;
  stopped = false;
  readonly closed: Promise<WorkerExit>;
  private killTimer?: NodeJS.Timeout;

  constructor(
    private readonly ctx: WorkerContext,
    readonly tag: string,
    readonly host: string,
    readonly local: boolean,
    env: Record<string, string>,
    onExit: (exit: WorkerExit) => void,
  ) {
    const { command, args, cwd, ssh, graceMs } = ctx;
    this.child = local
      ? spawn(command, args, {
          cwd,
          env: { ...ctx.localEnv, ...env, RINGWIRE_TOKEN: ctx.token },
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn(
          ssh[0],
          [
            ...ssh.slice(1),
            '-o',
            'BatchMode=yes',
            host,
            remoteCommand(cwd, { ...ctx.extraEnv, ...env }, graceMs, command, args),
          ],
          { detached: true, stdio: ['pipe', 'pipe', 'pipe'] },
        );
    const child = this.child;
    if (child.pid) {
      this.tree = new ProcessTree(child.pid);
      ctx.watchdog.add(child.pid);
    }
    if (!local) {
      child.stdin!.on('error', () => {}); // ssh gone: its exit says why
      child.stdin!.write(`${ctx.token}\n`);
    }
    const tagOut = new LineTagger(`[${tag}] `, ctx.out);
    const tagErr = new LineTagger(`[${tag}] `, ctx.err);
    child.stdout?.on('data', (d: Buffer) => tagOut.push(d));
    child.stderr?.on('data', (d: Buffer) => tagErr.push(d));

    this.closed = new Promise((done) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
        if (this.exited) return;
        this.exited = true;
        clearTimeout(this.killTimer);
        // The leader is gone; whatever it started goes too (found under the descendants known so far).
        if (local && this.tree) scanTrees([this.tree]);
        const pids = local ? (this.tree?.pids() ?? []) : [];
        if (local) this.kill('SIGKILL');
        // Shared-memory files a killed rank created and its peer never answered for.
        for (const pid of pids) removeRegionsOf(pid);
        if (child.pid) ctx.watchdog.remove(child.pid);
        const exit = { code, signal, spawnError, stopped: this.stopped };
        onExit(exit);
        let flushed = false;
        const drained = () => {
          if (flushed) return;
          flushed = true;
          tagOut.flush();
          tagErr.flush();
          done(exit);
        };
        if (!child.stdout || !child.stderr || (child.stdout.readableEnded && child.stderr.readableEnded))
          return drained();
        const t = setTimeout(() => (child.stdout!.destroy(), child.stderr!.destroy(), drained()), 2_000);
        child.once('close', () => (clearTimeout(t), drained()));
      };
      child.once('exit', (code, signal) => finish(code, signal));
      child.once('error', (e) => {
        if (!child.pid) finish(null, null, e); // spawn itself failed; 'exit' will not come
      });
    });
  }

  /** Asks it to stop: SIGTERM (remote: ssh's stdin closes), SIGKILL after the grace period. */
  stop(): void {
    if (this.exited || this.stopped) return;
    this.stopped = true;
    if (this.tree) scanTrees([this.tree]); // while the tree is intact
    if (this.local) this.kill('SIGTERM');
    else this.child.stdin?.end(); // the remote wrapper stops the worker when ssh's stdin closes
    this.killTimer = setTimeout(() => this.kill('SIGKILL'), this.ctx.graceMs);
  }

  /** Signals its process group and every process it started that left the group. */
  kill(signal: NodeJS.Signals): void {
    killGroup(this.child.pid, signal);
    this.tree?.signal(signal);
  }
}
