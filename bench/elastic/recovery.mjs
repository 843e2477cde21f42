#!/usr/bin/env node
// Elastic recovery benchmark (issue 13). Two measurements, with real processes on this machine:
//  1. recovery: an elastic job of N workers (N = 2, 4, 8) runs small all-reduce steps; one worker
//     is SIGKILLed; the time from the kill to the first completed step of the next generation
//     (on any survivor), median of REPS (default 5), with the default settle window.
//  2. commit cost: 2 workers with a 10M-parameter Float32Array state, all-reducing it every step
//     (a gradient stand-in) and committing every 10 steps: commit() time against the step time.
// Usage: node bench/elastic/recovery.mjs [--sizes 2,4,8] [--reps 5] [--params 10000000] [--json FILE]
// (--help lists the flags); needs a build.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RendezvousServer } from '@ringwire/rendezvous';
import { benchArgs } from '../lib/args.mjs';
import { median } from '../lib/stats.mjs';

const o = benchArgs('node bench/elastic/recovery.mjs [options]', {
  sizes: { type: 'numbers', default: [2, 4, 8], help: 'worker counts of the recovery measurement' },
  reps: { type: 'number', default: 5, help: 'recoveries measured at each count (the median is reported)' },
  params: {
    type: 'number',
    default: 10_000_000,
    help: 'float32 state of the commit measurement (0: skip it)',
  },
  json: { help: 'also write the results to this JSON file' },
});
const { sizes, reps, params } = o;
const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));
const TOKEN = 'elastic-bench';
let jobs = 0;

/** Starts n workers of a new elastic job; each resolves `exited` and collects its JSON lines. */
function startJob(url, n, min, env) {
  const job = `bench-${process.pid}-${++jobs}`;
  return Array.from({ length: n }, (_, i) => {
    const child = spawn(process.execPath, [WORKER], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        RINGWIRE_RENDEZVOUS: url,
        RINGWIRE_JOB_ID: job,
        RINGWIRE_TOKEN: TOKEN,
        RINGWIRE_SIZE: String(n),
        RINGWIRE_MIN_SIZE: String(min),
        RINGWIRE_MAX_SIZE: String(n),
        RINGWIRE_WORKER_ID: `w${i}`,
        RINGWIRE_NO_NATIVE: process.env.RINGWIRE_NO_NATIVE ?? '',
        ...env,
      },
    });
    const w = { child, events: [], waiters: [] };
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (!l.startsWith('{')) return;
      const e = JSON.parse(l);
      w.events.push(e);
      for (const f of [...w.waiters]) f(e);
    });
    w.exited = new Promise((r) => child.on('exit', r));
    w.until = (pred, ms = 60_000) =>
      new Promise((resolve, reject) => {
        const hit = w.events.find(pred);
        if (hit) return resolve(hit);
        const t = setTimeout(() => reject(new Error('benchmark worker timed out')), ms);
        w.waiters.push((e) => pred(e) && (clearTimeout(t), resolve(e)));
      });
    return w;
  });
}

/** One recovery measurement at n workers: ms from the SIGKILL to the next generation's first step. */
async function recoverOnce(url, n) {
  const workers = startJob(url, n, 1, {
    STEPS: '1000000',
    STEP_MS: '10',
    PARAMS: '1000',
    COMMIT_EVERY: '10',
  });
  try {
    await Promise.all(workers.map((w) => w.until((e) => e.event === 'step' && e.step >= 20)));
    const victim = workers[n - 1];
    const t0 = Date.now();
    victim.child.kill('SIGKILL');
    const survivors = workers.slice(0, -1);
    const firsts = await Promise.race(
      survivors.map((w) => w.until((e) => e.event === 'step' && e.generation >= 2 && e.t >= t0)),
    );
    return firsts.t - t0;
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
  }
}

/** Commit cost: 2 workers, `params` floats, 30 steps, commit every 10. */
async function commitCost(url) {
  const workers = startJob(url, 2, 1, {
    STEPS: '30',
    STEP_MS: '0',
    PARAMS: String(params),
    COMMIT_EVERY: '10',
  });
  await Promise.all(workers.map((w) => w.exited));
  const steps = workers.flatMap((w) =>
    w.events
      .filter((e) => e.event === 'step')
      .slice(5)
      .map((e) => e.ms),
  );
  const commits = workers.flatMap((w) => w.events.filter((e) => e.event === 'commit').map((e) => e.ms));
  const step = median(steps);
  const commit = median(commits);
  return { params, stepMs: step, commitMs: commit, commitsMs: commits, overhead: commit / (10 * step) };
}

const server = new RendezvousServer({ token: TOKEN, log: () => {} });
const { url } = await server.listen();
const result = { loadBefore: loadavg(), loadAfter: null, recovery: {}, commit: null };
try {
  for (const n of sizes) {
    const times = [];
    for (let r = 0; r < reps; r++) times.push(await recoverOnce(url, n));
    result.recovery[n] = { medianMs: median(times), times };
    console.log(`recovery at ${n} workers: median ${median(times)} ms (${times.join(', ')})`);
  }
  if (params > 0) {
    const c = await commitCost(url);
    result.commit = c;
    console.log(
      `commit of ${params} float32: median ${c.commitMs.toFixed(1)} ms (${c.commitsMs.map((x) => x.toFixed(1)).join(', ')}); step median ${c.stepMs.toFixed(1)} ms; every 10 steps: ${(100 * c.overhead).toFixed(2)}% of a step`,
    );
  }
  result.loadAfter = loadavg();
  const load = (l) => l.map((x) => x.toFixed(2)).join(' ');
  console.log(`load average before: ${load(result.loadBefore)}; after: ${load(result.loadAfter)}`);
  if (o.json) writeFileSync(o.json, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await server.close();
}
