// A worker of bench/elastic/recovery.mjs: an elastic.run loop of all-reduce steps over a
// Float32Array state of PARAMS floats, committing every COMMIT_EVERY steps. Prints one JSON line
// per step ({ event: 'step', t, generation, ... }) and per commit ({ event: 'commit', ms }).
import { elastic } from 'ringwire';

const num = (k, d) => (process.env[k] === undefined ? d : Number(process.env[k]));
const steps = num('STEPS', 100);
const every = num('COMMIT_EVERY', 10);
const stepMs = num('STEP_MS', 10);
const out = (event, data) => process.stdout.write(`${JSON.stringify({ event, t: Date.now(), ...data })}\n`);

const state = new elastic.ObjectState({ step: 0, weights: new Float32Array(num('PARAMS', 1000)) });
const grad = new Float32Array(state.weights.length);
await elastic.run(state, async (comm, s) => {
  while (s.step < steps) {
    const t0 = performance.now();
    grad.fill(1);
    await comm.allreduce(grad);
    for (let i = 0; i < grad.length; i += 1024) s.weights[i] += grad[i] / comm.size;
    s.step++;
    out('step', { step: s.step, generation: comm.generation, size: comm.size, ms: performance.now() - t0 });
    if (stepMs) await new Promise((r) => setTimeout(r, stepMs));
    if (s.step % every === 0) {
      const c0 = performance.now();
      await s.commit();
      out('commit', { ms: performance.now() - c0 });
    }
  }
});
