// bench/multihost.sh's arguments and link rates. The benchmark itself needs root and minutes of
// shaped-link runs, so it is checked end to end by hand (BENCHMARKS.md has the command), and
// the netns test of the hierarchical all-reduce runs in packages/core/test/hierarchical.test.ts.
import { describe, expect, it } from 'vitest';
import { IMPLS, parseMultihostArgs } from '../src/multihost.js';
import { rateBytes } from '../src/netns.js';

describe('multihost.sh', () => {
  it('reads tc rates as bytes per second', () => {
    expect(rateBytes('1gbit')).toBe(125e6);
    expect(rateBytes('5gbit')).toBe(625e6);
    expect(rateBytes('500mbit')).toBe(62.5e6);
    expect(rateBytes('10mbps')).toBe(10e6);
    expect(() => rateBytes('fast')).toThrow(/bad link rate "fast"/);
  });

  it("defaults to the issue's layouts, rates and sizes, every implementation, tls included", () => {
    const o = parseMultihostArgs([]);
    expect(o.layouts.map((l) => [l.name, l.hosts, l.perHost])).toEqual([
      ['2x2', 2, 2],
      ['4x1', 4, 1],
    ]);
    expect([o.links, o.sizes, o.impls]).toEqual([['1gbit', '5gbit'], [64 << 20, 256 << 20], [...IMPLS]]);
    expect(IMPLS).toContain('tls');
    expect(o.collective).toBe('allreduce');
    expect(parseMultihostArgs(['--collective', 'allgather']).collective).toBe('allgather');
  });

  it('refuses a bad layout, rate, implementation or collective', () => {
    expect(() => parseMultihostArgs(['--layouts', '1x4'])).toThrow(/bad layout "1x4"/);
    expect(() => parseMultihostArgs(['--links', '1gb'])).toThrow(/bad link rate/);
    expect(() => parseMultihostArgs(['--impls', 'flat,nccl'])).toThrow(/unknown impl nccl/);
    expect(() => parseMultihostArgs(['--collective', 'gather'])).toThrow(/unknown collective gather/);
  });
});
