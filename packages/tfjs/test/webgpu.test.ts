// @ringwire/tfjs on TensorFlow.js's WebGPU backend, in real worker processes. Without a GPU the
// adapter is Mesa's software one (llvmpipe through OpenGL ES; .ci/run installs its Debian packages):
// real WGSL shaders, GPU buffers and asynchronous reads, only slower. When not even that adapter
// can be made, these tests are skipped with the reason printed.
import { fileURLToPath } from 'node:url';
import { RendezvousServer } from '@ringwire/rendezvous';
import { type Check, type ErrorEvent, finish, killAll, type Proc, spawnNode } from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const WORKER = fileURLToPath(new URL('./fixtures/webgpu-worker.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const RINGRUN = `${ROOT}packages/run/dist/cli.js`;
const TOKEN = 'ringwire-webgpu-test-token';
// Environment in which neither Vulkan nor EGL finds a driver.
const NO_DRIVERS = {
  VK_ICD_FILENAMES: '/nonexistent',
  VK_DRIVER_FILES: '/nonexistent',
  __EGL_VENDOR_LIBRARY_DIRS: '/nonexistent',
};
let server: RendezvousServer;
let url = '';
let jobs = 0;

// Whether an adapter can be made here, decided once before the tests are collected.
const probe = await finish([spawnNode(WORKER, ['load'])]);
const unavailable = probe.errors[0][0]?.message ?? (probe.codes[0] === 0 ? '' : probe.output);
if (unavailable) console.warn(`skipping the WebGPU tests: ${unavailable}`);

beforeAll(async () => {
  server = new RendezvousServer({ token: TOKEN, log: () => {} });
  ({ url } = await server.listen());
});
afterAll(() => server?.close());
afterEach(killAll);

function startJob(size: number, scenario: string): Proc[] {
  const job = `webgpu-${process.pid}-${++jobs}`;
  return Array.from({ length: size }, (_, r) =>
    spawnNode(WORKER, [scenario], {
      RINGWIRE_RANK: String(r),
      RINGWIRE_SIZE: String(size),
      RINGWIRE_LOCAL_RANK: String(r),
      RINGWIRE_LOCAL_SIZE: String(size),
      RINGWIRE_RENDEZVOUS: url,
      RINGWIRE_JOB_ID: job,
      RINGWIRE_TOKEN: TOKEN,
    }),
  );
}

function expectAllPassed(res: { codes: number[]; checks: Check[][]; output: string }, minChecks: number) {
  const failed = res.checks.flatMap((cs, r) =>
    cs.filter((c) => !c.ok).map((c) => `rank ${r}: ${c.name}: ${c.detail ?? ''}`),
  );
  expect(failed, res.output).toEqual([]);
  expect(res.codes, res.output).toEqual(res.codes.map(() => 0));
  for (const cs of res.checks) expect(cs.length, res.output).toBeGreaterThanOrEqual(minChecks);
}

describe.skipIf(!!unavailable)('@ringwire/tfjs on WebGPU', () => {
  it('fp16/bf16 narrowing and widening on the device equal the CPU kernels bit for bit', async () => {
    expectAllPassed(await finish([spawnNode(WORKER, ['narrow'])]), 5);
  });

  it('2 ranks: a step equals one process on the union batch (SGD, Adam; loop, fit; 1 and many buckets)', async () => {
    expectAllPassed(await finish(startJob(2, 'equivalence')), 24);
  }, 180_000);

  it('3 ranks: identical weights equal to the union-batch step', async () => {
    expectAllPassed(await finish(startJob(3, 'equivalence')), 24);
  }, 240_000);

  it('2 ranks: fp16/bf16 compression, and no tensor leak across steps in any mode', async () => {
    const res = await finish(startJob(2, 'compression'));
    expectAllPassed(res, 14);
  }, 180_000);

  it('RINGWIRE_TFJS_BACKEND=webgpu ringrun -np 2 examples/train.mjs: within 3 points of the cpu backend after 4 epochs', async () => {
    const args = ['-np', '2', 'node', `${ROOT}examples/train.mjs`, '--epochs', '4', '--seed', '1'];
    const acc = async (backend: string) => {
      const res = await finish([spawnNode(RINGRUN, args, { RINGWIRE_TFJS_BACKEND: backend })]);
      const m = /test accuracy ([\d.]+)%/.exec(res.output);
      expect(res.codes[0], res.output).toBe(0);
      expect(m, res.output).not.toBeNull();
      return Number(m![1]);
    };
    const gpu = await acc('webgpu');
    const cpu = await acc('cpu');
    expect(Math.abs(gpu - cpu), `webgpu ${gpu}%, cpu ${cpu}%`).toBeLessThanOrEqual(3);
  }, 300_000);
});

describe('@ringwire/tfjs webgpu without any adapter', () => {
  it('a typed error naming the Debian packages, not a crash', async () => {
    const res = await finish([spawnNode(WORKER, ['load'], NO_DRIVERS)]);
    const err = res.errors[0][0] as ErrorEvent | undefined;
    expect(res.codes[0], res.output).toBe(0);
    expect(err?.code, res.output).toBe('RINGWIRE_ERR_INVALID_ARG');
    expect(err?.message).toMatch(/no WebGPU adapter.*libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri/);
  });
});
