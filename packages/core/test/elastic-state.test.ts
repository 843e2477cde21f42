import { elastic, init } from 'ringwire';
import { describe, expect, it } from 'vitest';

// In-process: ObjectState's commit / restore / sync hooks and the sharding helper.

describe('elastic.ObjectState', () => {
  it('holds values as properties; restore goes back to the last commit, typed arrays in place', async () => {
    const state = new elastic.ObjectState({
      epoch: 0,
      meta: { lr: 0.1, tags: ['a'] },
      w: new Float32Array(4),
    });
    const w = state.w;
    const comm = await init({ size: 1 });
    try {
      await state.sync(comm);
      state.epoch = 3;
      state.meta.tags.push('b');
      w.fill(7);
      await state.commit();
      state.epoch = 9;
      state.meta.lr = 1;
      w.fill(1);
      state.restore();
      expect(state.epoch).toBe(3);
      expect(state.meta).toEqual({ lr: 0.1, tags: ['a', 'b'] });
      expect(state.w).toBe(w); // the caller's reference stays valid
      expect([...state.w]).toEqual([7, 7, 7, 7]);
      // The kept copy is not aliased by the restored values.
      state.meta.tags.push('c');
      w[0] = 5;
      state.restore();
      expect(state.meta.tags).toEqual(['a', 'b']);
      expect(state.w[0]).toBe(7);
      expect(state.commits).toBe(1);
    } finally {
      await comm.close();
    }
  });

  it('restore before any commit or sync leaves the state as it is', () => {
    const state = new elastic.ObjectState({ n: 1 });
    state.n = 2;
    state.restore();
    expect(state.n).toBe(2);
  });

  it('refuses reserved names and values that are neither JSON nor typed arrays', () => {
    expect(() => new elastic.ObjectState({ commit: 1 })).toThrow(/reserved/);
    expect(() => new elastic.ObjectState({ f: () => 1 })).toThrow(/JSON value or a typed array/);
    expect(() => new elastic.ObjectState({ m: new Map() })).toThrow(/m must be/);
    expect(() => new elastic.ObjectState({ x: { y: Number.NaN } })).toThrow(/x\.y/);
  });

  it('subclasses extend it through save / load / syncExtra', async () => {
    class Counted extends elastic.ObjectState<{ step: number }> {
      extra = new Float64Array([1, 2]);
      synced = 0;
      save() {
        return { base: super.save(), extra: this.extra.slice() };
      }
      load(saved: unknown) {
        const s = saved as { base: unknown; extra: Float64Array };
        super.load(s.base);
        this.extra.set(s.extra);
      }
      async syncExtra(comm: Parameters<elastic.State['sync']>[0], root: number) {
        this.synced++;
        await comm.broadcast(this.extra, root);
      }
    }
    const state = new Counted({ step: 0 });
    const comm = await init({ size: 1 });
    try {
      await state.sync(comm);
      expect(state.synced).toBe(1);
      state.step = 4;
      state.extra[0] = 40;
      await state.commit();
      state.step = 5;
      state.extra[0] = 50;
      state.restore();
      expect([state.step, state.extra[0]]).toEqual([4, 40]);
    } finally {
      await comm.close();
    }
  });

  it('onReset callbacks run in order with the communicator', async () => {
    const state = new elastic.ObjectState({});
    const seen: string[] = [];
    state.onReset(async () => void seen.push('a'));
    state.onReset((c) => void seen.push(`b${(c as { size: number }).size}`));
    await state.runReset({ size: 3 } as never);
    expect(seen).toEqual(['a', 'b3']);
    expect(() => state.onReset(1 as never)).toThrow(/function/);
  });
});

describe('elastic.shard', () => {
  const all = (size: number, epochSamples: number, processed: number, shuffleSeed?: number) =>
    Array.from({ length: size }, (_, rank) =>
      elastic.shard({ size, rank, epochSamples, processed, shuffleSeed }),
    );

  it('splits the rest of the epoch across the ranks, each index once, sizes within one', () => {
    const parts = all(3, 10, 2);
    expect(parts).toEqual([
      [2, 5, 8],
      [3, 6, 9],
      [4, 7],
    ]);
  });

  it('after a re-formation the new ranks share exactly what was not processed', () => {
    const n = 103;
    const seed = 42;
    // 4 ranks process 5 batches of 3: 60 samples, the first 60 of the shuffled order.
    const before = all(4, n, 0, seed);
    const done = before.flatMap((p) => p.slice(0, 15));
    const after = all(3, n, 60, seed).flat();
    expect(new Set([...done, ...after]).size).toBe(n);
    expect(done.length + after.length).toBe(n);
  });

  it('shuffles deterministically by seed', () => {
    const a = elastic.shard({ size: 1, rank: 0, epochSamples: 50, processed: 0, shuffleSeed: 7 });
    expect(a).toEqual(elastic.shard({ size: 1, rank: 0, epochSamples: 50, processed: 0, shuffleSeed: 7 }));
    expect(a).not.toEqual(
      elastic.shard({ size: 1, rank: 0, epochSamples: 50, processed: 0, shuffleSeed: 8 }),
    );
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
  });

  it('rejects bad arguments with INVALID_ARG', () => {
    expect(() => elastic.shard({ size: 2, rank: 2, epochSamples: 4, processed: 0 })).toThrow(/out of range/);
    expect(() => elastic.shard({ size: 2, rank: 0, epochSamples: 4, processed: 5 })).toThrow(/exceeds/);
    expect(() => elastic.shard({ size: 0, rank: 0, epochSamples: 4, processed: 0 })).toThrow(/size/);
  });
});
