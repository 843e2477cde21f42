import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '@ringwire/rendezvous';
import { killAll, spawnNode } from '@ringwire/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../lib/args.mjs';

// The bench scripts' shared parts (bench/lib), run through real scripts at tiny sizes.
const script = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
afterEach(() => killAll());

async function run(path: string, args: string[], env: Record<string, string> = {}) {
  const p = spawnNode(script(path), args, env);
  const code = await p.exited;
  return { code, out: p.lines, err: p.stderr.join('\n') };
}

describe('bench argument parser', () => {
  const options = {
    np: { type: 'number', positional: true, default: 2, help: 'ranks' },
    sizes: { type: 'numbers', env: 'SIZES', default: [4096], help: 'sizes' },
    algo: { env: 'ALGO', default: 'auto', help: 'algorithm' },
    out: { type: 'boolean', env: 'OUT', help: 'reuse' },
  } as const;

  it('takes a flag over its environment variable over the default, and bare positionals in order', () => {
    expect(parseBenchArgs(options, [], {})).toEqual({
      help: false,
      np: 2,
      sizes: [4096],
      algo: 'auto',
      out: undefined,
    });
    const env = { SIZES: '1,2', ALGO: 'ring', OUT: '1' };
    expect(parseBenchArgs(options, ['4'], env)).toMatchObject({
      np: 4,
      sizes: [1, 2],
      algo: 'ring',
      out: true,
    });
    expect(parseBenchArgs(options, ['--np', '3', '--sizes', '8', '--algo', 'tree'], env)).toMatchObject({
      np: 3,
      sizes: [8],
      algo: 'tree',
    });
    // An empty variable is unset; 0 / false turn a boolean off.
    expect(parseBenchArgs(options, [], { SIZES: '', OUT: '0' })).toMatchObject({ sizes: [4096], out: false });
  });

  it('rejects unknown flags, bad numbers and extra arguments with InvalidArgumentError', () => {
    for (const argv of [['--bogus'], ['--np', 'two'], ['--sizes', '4096,x'], ['2', '3']]) {
      expect(() => parseBenchArgs(options, argv, {})).toThrow(InvalidArgumentError);
    }
    expect(() => parseBenchArgs(options, [], { SIZES: '4K' })).toThrow(/--sizes: expected a number/);
  });

  it('--help lists every option with its variable and default, and exits 0', async () => {
    const r = await run('core/sweep.mjs', ['--help']);
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toMatch(/--sizes <numbers> .*env SIZES, default 4096,65536/);
    const bad = await run('core/sweep.mjs', ['--sizes']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/error: .*--sizes/);
  });
});

describe('bench harnesses', () => {
  it('a script started by hand runs as NP ranks and prints its lines as the ranks wrote them', async () => {
    const line = /^4096\t[\d.]+ us\tbusbw [\d.]+ GB\/s$/;
    const a = await run('core/sweep.mjs', ['2', '--sizes', '4096']);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toHaveLength(1);
    expect(a.out[0]).toMatch(line);
    // The environment spelling of the recorded commands (`SIZES=... node ... NP`) still works.
    const b = await run('core/sweep.mjs', ['2'], { SIZES: '4096' });
    expect(b.out).toHaveLength(1);
    expect(b.out[0]).toMatch(line);
  });

  it("a rank's failure is the launcher's exit code", async () => {
    const r = await run('core/sweep.mjs', ['2', '--sizes', '4096', '--algo', 'bogus']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/algo must be one of auto, ring, tree, hierarchical/);
  });

  it('a process pair finds each other on free ports and measures', async () => {
    const r = await run('micro/tcpbw.mjs', ['--total', String(4 << 20)]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toEqual([expect.stringMatching(/^raw tcp both ways: [\d.]+ GB\/s each way$/)]);
  });
});
