import { InvalidArgumentError } from '@ringwire/common';

/** Arguments of `shard`. */
export interface ShardOptions {
  /** The current generation's size and this rank (comm.size, comm.rank). */
  size: number;
  rank: number;
  /** Samples in one epoch. */
  epochSamples: number;
  /** Samples of this epoch already processed and committed, all ranks together. */
  processed: number;
  /** Shuffle the epoch's indices with this seed (e.g. seed + epoch); omitted: in order. */
  shuffleSeed?: number;
}

/**
 * The sample indices this rank processes in the rest of the current epoch, as Horovod's
 * ElasticSampler: the epoch's indices (shuffled by `shuffleSeed`), minus the first `processed`,
 * dealt out in turn (rank r gets remaining[r], remaining[r + size], ...). Nothing is padded:
 * ranks get at most one index more than others, so no sample is skipped or repeated. After k
 * batches of B samples on every rank, exactly the first k*B*size remaining indices are done:
 * add k*B*size to `processed` (in the committed state), and after a re-formation the new ranks
 * share exactly what is left.
 */
export function shard(options: ShardOptions): number[] {
  const { size, rank, epochSamples, processed, shuffleSeed } = options ?? ({} as ShardOptions);
  const int = (name: string, v: unknown, min: number) => {
    if (!Number.isSafeInteger(v) || (v as number) < min)
      throw new InvalidArgumentError(`shard: ${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  };
  int('size', size, 1);
  int('rank', rank, 0);
  int('epochSamples', epochSamples, 0);
  int('processed', processed, 0);
  if (rank >= size) throw new InvalidArgumentError(`shard: rank ${rank} is out of range for size ${size}`);
  if (processed > epochSamples)
    throw new InvalidArgumentError(`shard: processed (${processed}) exceeds epochSamples (${epochSamples})`);
  if (shuffleSeed !== undefined && !Number.isSafeInteger(shuffleSeed))
    throw new InvalidArgumentError(
      `shard: shuffleSeed must be an integer, got ${JSON.stringify(shuffleSeed)}`,
    );
  const order = Array.from({ length: epochSamples }, (_, i) => i);
  if (shuffleSeed !== undefined) shuffle(order, shuffleSeed);
  const mine: number[] = [];
  for (let i = processed + rank; i < epochSamples; i += size) mine.push(order[i]);
  return mine;
}

/** Fisher-Yates with mulberry32: the same permutation on every rank and every run for a seed. */
function shuffle(a: number[], seed: number): void {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
}
