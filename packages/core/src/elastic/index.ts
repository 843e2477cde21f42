/**
 * Elastic training, after Horovod Elastic: a job that survives losing and gaining workers. See
 * the README's "Elastic training" section.
 */
export { MembershipChangedError as MembershipChanged } from '@ringwire/common';
export { run } from './run.js';
export { type ShardOptions, shard } from './shard.js';
export { broadcastJson, ObjectState, type State } from './state.js';
