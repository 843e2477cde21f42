import { readdirSync, readFileSync } from 'node:fs';

interface ProcStat {
  pid: number;
  ppid: number;
  pgid: number;
  /** Start time since boot (clock ticks): with the pid, it names one process even after pid reuse. */
  start: string;
  zombie: boolean;
}

/** One process's /proc/<pid>/stat, or undefined when it is gone (or this is not Linux). */
function readStat(pid: number): ProcStat | undefined {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { pid, ppid: Number(f[1]), pgid: Number(f[2]), start: f[19], zombie: f[0] === 'Z' };
}

function readAll(): ProcStat[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  return names
    .filter((n) => /^\d+$/.test(n))
    .map((n) => readStat(Number(n)))
    .filter((p): p is ProcStat => p !== undefined && !p.zombie);
}

/**
 * Every process a worker started, however deep, including those that left its process group
 * and session (setsid, a daemon's double fork). Killing the worker's group misses those, and
 * once their parent is gone they are reparented away from the worker, so the tree is collected
 * while it is intact: by `scanTrees` every so often and again just before it is signalled. A
 * descendant is remembered by pid and start time, so a reused pid is never signalled. Linux
 * only (/proc); elsewhere the tree stays empty and only process groups are stopped.
 */
export class ProcessTree {
  /** Descendant pid -> its start time and whether it leads its own process group. */
  private readonly known = new Map<number, { start: string; leader: boolean }>();

  constructor(readonly root: number) {}

  /** The root and every descendant known (as of the last scan). */
  pids(): number[] {
    return [this.root, ...this.known.keys()];
  }

  /** Descendants that lead a process group of their own (setsid, setpgid), as of the last scan. */
  leaders(): number[] {
    return [...this.known].filter(([, k]) => k.leader).map(([pid]) => pid);
  }

  /** Adds the live processes under the root or under a descendant already known; forgets dead ones. */
  update(all: ProcStat[]): void {
    const byPid = new Map(all.map((p) => [p.pid, p]));
    for (const [pid, k] of this.known) if (byPid.get(pid)?.start !== k.start) this.known.delete(pid);
    const children = new Map<number, ProcStat[]>();
    for (const p of all) {
      const list = children.get(p.ppid);
      if (list) list.push(p);
      else children.set(p.ppid, [p]);
    }
    const todo = [this.root, ...this.known.keys()];
    while (todo.length) {
      for (const c of children.get(todo.pop()!) ?? []) {
        if (c.pid === this.root || this.known.has(c.pid)) continue;
        this.known.set(c.pid, { start: c.start, leader: c.pgid === c.pid });
        todo.push(c.pid);
      }
    }
  }

  /** Signals every known descendant that is still the same process; a group leader with its group. */
  signal(signal: NodeJS.Signals): void {
    for (const [pid, k] of this.known) {
      const now = readStat(pid);
      if (!now || now.start !== k.start || now.zombie) {
        this.known.delete(pid);
        continue;
      }
      try {
        // A leader's group may hold members started since the last scan.
        process.kill(now.pgid === pid ? -pid : pid, signal);
      } catch {
        // gone meanwhile
      }
    }
  }
}

/** Brings every tree up to date from one pass over /proc. */
export function scanTrees(trees: ProcessTree[]): void {
  if (trees.length === 0) return;
  const all = readAll();
  for (const t of trees) t.update(all);
}

/** Signals a process group; a group already gone is ignored. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}
