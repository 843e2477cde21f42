// Elastic training with @ringwire/tfjs, real processes on the pure-JS cpu backend: examples/train.mjs
// --elastic losing a worker during model.fit, a job killed and started again resuming from its
// checkpoint, TfjsState's restore, checkpoint writes interrupted by SIGKILL, and bad directories.
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import {
  finish,
  jsonEvents,
  killAll,
  type Proc,
  sigkill,
  spawnNode,
  startRanks,
  startRendezvous,
  type TestRendezvous,
} from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const TRAIN = join(ROOT, 'examples/train.mjs');
const FIXTURE = fileURLToPath(new URL('./fixtures/elastic-state.mjs', import.meta.url));
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'rw-ckpt-'));
  dirs.push(d);
  return d;
};
let rdv: TestRendezvous;

beforeAll(async () => (rdv = await startRendezvous()));
afterAll(async () => {
  await rdv?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(killAll);

// A small run: 3 epochs of 1536 images, batches of 32 per worker, a commit every 2 batches.
const SMALL = ['--elastic', '--epochs', '3', '--train', '1536', '--test', '1024', '--batch-size', '32'];
const SMALL_ARGS = [...SMALL, '--seed', '1', '--commit-every', '2', '--lr', '0.004'];

/** Starts examples/train.mjs --elastic as `size` workers of one elastic job (min 2). */
function startTrain(size: number, args: string[] = [], job?: string): Proc[] {
  return startRanks(rdv, TRAIN, size, {
    args: [...SMALL_ARGS, ...args],
    env: { RINGWIRE_NO_NATIVE: '1', RINGWIRE_ELASTIC_SETTLE_MS: '300' },
    perRank: (r) => ({
      RINGWIRE_MIN_SIZE: '2',
      RINGWIRE_MAX_SIZE: String(size),
      RINGWIRE_WORKER_ID: `w${r}`,
      ...(job ? { RINGWIRE_JOB_ID: job } : {}),
    }),
  }).procs;
}

/** The worker that is rank 0 of generation 1 (elastic ranks go by arrival): it prints. */
const rank0 = async (procs: Proc[]) => {
  await Promise.race(procs.map((p) => p.waitFor(/^generation 1:/, 40_000)));
  return procs.find((p) => p.lines.some((l) => l.startsWith('generation 1:')))!;
};

const accuracy = (p: Proc) => {
  const m = p.lines.map((l) => /^test accuracy ([\d.]+)%/.exec(l)).find(Boolean);
  if (!m) throw new Error(`no accuracy in:\n${p.lines.join('\n')}\n${p.stderr.join('\n')}`);
  return Number(m[1]);
};

/** The CRC-32 of the model weights stored in a checkpoint file, and its header. */
function readCheckpoint(dir: string) {
  const { file } = JSON.parse(readFileSync(join(dir, 'latest'), 'utf8'));
  const buf = readFileSync(join(dir, file));
  const hlen = buf.readUInt32LE(8);
  const meta = JSON.parse(buf.subarray(12, 12 + hlen).toString());
  const data = buf.subarray(12 + hlen);
  let c = 0;
  for (const e of meta.header.layout.entries.filter((e: { kind: string }) => e.kind === 'weight')) {
    const n = e.shape.reduce((a: number, b: number) => a * b, 1) * 4;
    c = crc32(data.subarray(e.offset, e.offset + n), c);
  }
  return { seq: meta.header.seq as number, values: meta.header.values, crc: c.toString(16).padStart(8, '0') };
}

describe('train.mjs --elastic', () => {
  it('a worker SIGKILLed during model.fit: the job completes within 3 points of an undisturbed run', async () => {
    const calm = startTrain(3);
    const { codes, output } = await finish(calm, 50_000);
    expect(codes, output).toEqual([0, 0, 0]);
    const reference = accuracy(calm.find((p) => p.lines.length > 0)!);

    const procs = startTrain(3);
    const printer = await rank0(procs);
    await printer.waitFor(/^epoch 1\/3/, 40_000);
    await new Promise((r) => setTimeout(r, 700)); // into epoch 2's model.fit (an epoch takes seconds)
    const victim = procs.find((p) => p !== printer)!;
    await sigkill(victim);
    const survivors = procs.filter((p) => p !== victim);
    const res = await finish(survivors, 50_000);
    expect(res.codes, res.output).toEqual([0, 0]);
    const out = printer.lines.join('\n');
    expect(out).toMatch(/^generation 1: 3 workers, lr 0.012, at epoch 1 sample 0$/m);
    // The survivors re-form at their last commit with the learning rate rescaled to 2 workers.
    expect(out).toMatch(/^generation 2: 2 workers, lr 0.008, at epoch [23] sample \d+$/m);
    expect(out).toMatch(/^epoch 3\/3 .*\(2 workers\)$/m);
    expect(Math.abs(accuracy(printer) - reference), `${reference}%\n${out}`).toBeLessThanOrEqual(3);
  }, 110_000);

  it('a job killed and started again resumes from its latest checkpoint with the same weights', async () => {
    const dir = tempDir();
    const args = ['--checkpoint', dir, '--checkpoint-every', '2'];
    const first = startTrain(2, args);
    const printer = await rank0(first);
    await printer.waitFor(/^checkpoint 4 written/, 40_000);
    await Promise.all(first.map(sigkill));
    // Whatever the kill interrupted, `latest` names a complete checkpoint.
    const saved = readCheckpoint(dir);
    expect(saved.seq).toBeGreaterThanOrEqual(4);
    const printed = printer.lines.find((l) => l.startsWith(`checkpoint ${saved.seq} written`));
    if (printed) expect(printed).toContain(`weights ${saved.crc}`);

    const again = startTrain(2, args);
    const line = await Promise.any(again.map((p) => p.waitFor(/^resumed from checkpoint/, 30_000)));
    expect(line).toBe(
      `resumed from checkpoint ${saved.seq}: epoch ${saved.values.epoch + 1}, sample ${saved.values.processed}, weights ${saved.crc}`,
    );
    await rank0(again);
  }, 90_000);
});

describe('TfjsState', () => {
  const run = async (...args: string[]) => {
    const p = spawnNode(FIXTURE, args, { RINGWIRE_NO_NATIVE: '1' });
    const code = await p.exited;
    return { code, p, output: `${p.lines.join('\n')}\n${p.stderr.join('\n')}` };
  };
  type State = { seq: number; batch: number; crc: number; found?: boolean; iterations?: number };

  it('restore() puts back weights, extras and the Adam state bit for bit', async () => {
    const { code, p, output } = await run('restore');
    expect(code, output).toBe(0);
    const checks = jsonEvents<{ name: string; ok: boolean }>(p, 'check');
    expect(checks.length, output).toBe(5);
    expect(
      checks.filter((c) => !c.ok),
      output,
    ).toEqual([]);
  }, 30_000);

  it.each([
    ['partial', 2],
    ['written', 2],
    ['renamed', 2],
    ['latest', 3],
  ])(
    'a checkpoint write SIGKILLed at %s leaves checkpoint %i loadable',
    async (stage, expected) => {
      const dir = tempDir();
      const w = await run('write', dir, stage);
      expect(w.code, w.output).toBe(137);
      const states = jsonEvents<State>(w.p, 'state');
      const l = await run('load', dir);
      expect(l.code, l.output).toBe(0);
      const [got] = jsonEvents<State>(l.p, 'state');
      expect(got, l.output).toMatchObject({
        found: true,
        seq: expected,
        batch: expected,
        iterations: expected,
      });
      expect(got.crc).toBe(states[expected - 1].crc);
    },
    30_000,
  );

  it('bad checkpoint directories and files fail with RINGWIRE_ERR_CHECKPOINT', async () => {
    const file = join(tempDir(), 'file');
    writeFileSync(file, 'not a directory');
    const errorOf = async (dir: string) => {
      const r = await run('load', dir);
      const [e] = jsonEvents<{ code: string; message: string }>(r.p, 'error');
      expect(e, r.output).toBeDefined();
      expect(e.code).toBe('RINGWIRE_ERR_CHECKPOINT');
      return e.message;
    };
    expect(await errorOf(file)).toMatch(/checkpoint directory .*file: cannot be used/);
    expect(await errorOf(join(file, 'below'))).toMatch(/cannot be used: ENOTDIR/);

    const dir = tempDir();
    expect((await run('write', dir, 'none')).code).toBe(0);
    const { file: newest } = JSON.parse(readFileSync(join(dir, 'latest'), 'utf8'));
    truncateSync(join(dir, newest), 1000);
    expect(await errorOf(dir)).toMatch(/ckpt-00000003\.rwckpt is not a complete checkpoint/);
    writeFileSync(join(dir, 'latest'), '{"file":"ckpt-00000009.rwckpt"}');
    expect(await errorOf(dir)).toMatch(/cannot read ckpt-00000009\.rwckpt, which latest names/);
  }, 30_000);
});
