// @ringwire/tfjs with real worker processes on TensorFlow.js's pure-JS cpu backend.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type Check,
  type ErrorEvent,
  finish,
  killAll,
  startRanks,
  startRendezvous,
  type TestRendezvous,
} from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const WORKER = fileURLToPath(new URL('./fixtures/tfjs-worker.mjs', import.meta.url));
/** The repository root: the example runs from there, as the README says. */
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
let rdv: TestRendezvous;

beforeAll(async () => (rdv = await startRendezvous()));
afterAll(() => rdv?.close());
afterEach(killAll);

/** The ranks of one job of the tfjs worker running `scenario`. */
const startJob = (size: number, scenario: string) =>
  startRanks(rdv, WORKER, size, { args: [scenario] }).procs;

/** Every rank exits 0, reports no failed check, and (per rank) reports the same named checks. */
function expectAllPassed(
  res: { codes: number[]; checks: Check[][]; output: string },
  minChecks: number,
): void {
  const failed = res.checks.flatMap((cs, r) =>
    cs.filter((c) => !c.ok).map((c) => `rank ${r}: ${c.name}: ${c.detail ?? ''}`),
  );
  expect(failed, res.output).toEqual([]);
  expect(res.codes, res.output).toEqual(res.codes.map(() => 0));
  for (const cs of res.checks) expect(cs.length, res.output).toBeGreaterThanOrEqual(minChecks);
}

describe('@ringwire/tfjs DistributedOptimizer', () => {
  it('2 ranks: one step equals one process on the union batch (SGD, Adam; custom loop and fit)', async () => {
    const res = await finish(startJob(2, 'equivalence'));
    expectAllPassed(res, 16);
    expect(res.checks[0].map((c) => c.name)).toContain('adam fit: equals one process on the union batch');
    expect(res.checks[0].map((c) => c.name)).toContain('adam fit: kernels moved');
  });

  it('3 ranks: identical weights equal to the union-batch step', async () => {
    const res = await finish(startJob(3, 'equivalence'));
    expectAllPassed(res, 16);
  });

  it('2 ranks: missing callback, backwardPassesPerStep, compression, broadcast, callbacks, leaks, model.save', async () => {
    const res = await finish(startJob(2, 'features'), 110_000);
    expectAllPassed(res, 37);
    const names = res.checks[0].map((c) => c.name);
    for (const n of [
      'fit without the callback throws',
      'bpps=2 avg=false: equals the union step',
      'bpps=2 in fit: one averaged update',
      'fp16: update within 0.004 of uncompressed',
      'bf16: update within 0.03 of uncompressed',
      "bf16: 30-step run's loss within 3% of uncompressed",
      'broadcastVariables: identical weights',
      'BroadcastGlobalVariablesCallback: identical optimizer state',
      'MetricAverageCallback: epoch loss is the mean over ranks',
      'no tensor leak across fit epochs',
      'no tensor leak across custom-loop steps',
      "LearningRateWarmupCallback: Horovod's ramp from lr/size",
      'loaded model has the same weights and predictions',
    ])
      expect(names).toContain(n);
  }, 120_000);

  describe('ranks whose variables differ fail with RINGWIRE_ERR_MISMATCH, not a hang', () => {
    const expectMismatch = (errors: ErrorEvent[][], output: string, pattern: RegExp) => {
      for (const [r, es] of errors.entries()) {
        expect(es.length, output).toBe(1);
        expect(es[0].code, `rank ${r}\n${output}`).toBe('RINGWIRE_ERR_MISMATCH');
        expect(es[0].message, output).toMatch(pattern);
        expect((es[0] as ErrorEvent & { ms: number }).ms, output).toBeLessThan(15_000);
      }
    };
    it('different variable counts: the layout check names the first differing tensor', async () => {
      const res = await finish(startJob(2, 'mismatch-count'));
      expect(res.codes, res.output).toEqual([0, 0]);
      expectMismatch(
        res.errors,
        res.output,
        /ranks disagree .*first difference at tensor #0: rank 0 has \S+ \[6,8\] float32, rank 1 has \S+ \[6,9\] float32/,
      );
    });
    it('without the layout check, the core rejects the fused all-reduce (element counts differ)', async () => {
      const res = await finish(startJob(2, 'mismatch-count-core'));
      expect(res.codes, res.output).toEqual([0, 0]);
      expectMismatch(res.errors, res.output, /count/);
    });
    it('same element count, different shapes: only the layout check can tell', async () => {
      const res = await finish(startJob(2, 'mismatch-shape'));
      expect(res.codes, res.output).toEqual([0, 0]);
      expectMismatch(
        res.errors,
        res.output,
        /rank 0 has \S+ \[2,3\] float32, rank 1 has \S+ \[3,2\] float32/,
      );
    });
  });

  it('the example at 2 ranks under ringrun reaches the single-process accuracy within 2 points', async () => {
    // Same seeded initial weights, batches in sample order, no warmup: 2 ranks x 64 samples at
    // lr 0.002 x 2 see at every step exactly the 128 samples one process sees at lr 0.004.
    const run = promisify(execFile);
    const common = [
      'examples/train.mjs',
      '--epochs',
      '4',
      '--train',
      '4096',
      '--test',
      '2048',
      '--seed',
      '1',
      '--warmup-epochs',
      '0',
      '--fixed-order',
    ];
    const accuracy = (out: string) => {
      const m = /test accuracy ([\d.]+)%/.exec(out);
      if (!m) throw new Error(`no accuracy in:\n${out}`);
      return Number(m[1]);
    };
    const ringrun = fileURLToPath(new URL('../../run/dist/cli.js', import.meta.url));
    const [two, one] = await Promise.all([
      run(
        process.execPath,
        [ringrun, '-np', '2', process.execPath, ...common, '--batch-size', '64', '--lr', '0.002'],
        { cwd: ROOT, timeout: 110_000 },
      ),
      run(process.execPath, [...common, '--batch-size', '128', '--lr', '0.004'], {
        cwd: ROOT,
        timeout: 110_000,
      }),
    ]);
    expect(two.stdout).toMatch(/^\[0\] epoch 4\/4 {2}loss/m);
    expect(two.stdout).toMatch(/^\[0\] backend cpu .* 2 rank\(s\), 2048 training images per rank/m);
    const a2 = accuracy(two.stdout),
      a1 = accuracy(one.stdout);
    expect(a1, one.stdout).toBeGreaterThan(75);
    expect(
      Math.abs(a2 - a1),
      `2 ranks ${a2}% vs 1 process ${a1}%\n${two.stdout}\n${one.stdout}`,
    ).toBeLessThanOrEqual(2);
  }, 120_000);
});
