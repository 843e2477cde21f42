#!/usr/bin/env node
// Elastic recovery benchmark (issue 13). Two measurements, with real processes on this machine:
//  1. recovery: an elastic job of N workers (N = 2, 4, 8) runs small all-reduce steps; one worker
//     is SIGKILLed; the time from the kill to the first completed step of the next generation
//     (on any survivor), median of REPS (default 5), with the default settle window.
//  2. commit cost: 2 workers with a 10M-parameter Float32Array state, all-reducing it every step
//     (a gradient stand-in) and committing every 10 steps: commit() time against the step time.
// Usage: node bench/elastic/recovery.mjs [--sizes 2,4,8] [--reps 5] [--params 10000000] [--json FILE]
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RendezvousServer } from '@ringwire/rendezvous';

const args = process.argv.slice(2);
const opt = (name, d) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : d;
};
const sizes = opt('sizes', '2,4,8').split(',').map(Number);
const reps = Number(opt('reps', '5'));
const params = Number(opt('params', '10000000'));
const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));
const TOKEN = 'elastic-bench';
let jobs = 0;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

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
    if (process.env.DEBUG_TIMES) console.log({ formed: lastFormed - t0, first: firsts.t - t0 });
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
let lastFormed = 0;
server.on('formed', () => (lastFormed = Date.now()));
const result = { load: loadavg(), recovery: {}, commit: null };
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
  console.log(`load average: ${result.load.map((x) => x.toFixed(2)).join(' ')}`);
  const json = opt('json');
  if (json) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await server.close();
}
