import { InvalidArgumentError } from 'ringwire';
import { RingwireCallback } from './callback-base.js';
import type { DistributedOptimizer } from './optimizer.js';

/**
 * Runs the second half of every distributed step in model.fit: after each batch, the gradients
 * that minimize() fused are all-reduced and applied (fit awaits onBatchEnd). Get it from
 * `opt.callback()`; `distributedFit` adds it for you.
 */
export class DistributedOptimizerCallback extends RingwireCallback {
  constructor(readonly optimizer: DistributedOptimizer) {
    super();
  }
  override async onTrainBegin(): Promise<void> {
    if (this.model && this.model.optimizer !== this.optimizer) {
      throw new InvalidArgumentError(
        'DistributedOptimizer callback: this model was compiled with another optimizer; compile it with the DistributedOptimizer that made this callback',
      );
    }
    this.optimizer.beginFit();
  }
  override async onBatchEnd(): Promise<void> {
    await this.optimizer.synchronize();
  }
  override async onTrainEnd(): Promise<void> {
    try {
      await this.optimizer.synchronize();
    } finally {
      this.optimizer.endFit();
    }
  }
}
