// The helpers' own guarantees: a job's wait is bounded, and what outlives it is killed.
import { afterEach, describe, expect, it } from 'vitest';
import { alive, finish, killAll, spawnProc } from '../src/index.js';

afterEach(killAll);

const hang = () => spawnProc([process.execPath, '-e', 'console.log("up"); setInterval(() => {}, 1000)']);

describe('finish', () => {
  it('collects exit codes and JSON checks', async () => {
    const ok = spawnProc([
      process.execPath,
      '-e',
      'console.log(JSON.stringify({ event: "check", name: "a", ok: true }))',
    ]);
    const bad = spawnProc([process.execPath, '-e', 'process.exit(3)']);
    const res = await finish([ok, bad], 10_000);
    expect(res.codes).toEqual([0, 3]);
    expect(res.checks).toEqual([[{ event: 'check', name: 'a', ok: true }], []]);
  });

  it('kills ranks still running at the bound and fails naming them, with their output', async () => {
    const done = spawnProc([process.execPath, '-e', '']);
    const stuck = hang();
    await stuck.waitFor(/^up$/);
    await expect(finish([done, stuck], 300)).rejects.toThrow(
      /rank\(s\) 1 still running after 300 ms, killed:[\s\S]*--- rank 1\nup/,
    );
    expect(await stuck.exited).toBe(137);
    expect(alive(stuck.child.pid!)).toBe(false);
  });
});

describe('killAll', () => {
  it('leaves no spawned process running', async () => {
    const procs = [hang(), hang()];
    await Promise.all(procs.map((p) => p.waitFor(/^up$/)));
    await killAll();
    expect(procs.map((p) => alive(p.child.pid!))).toEqual([false, false]);
  });
});
