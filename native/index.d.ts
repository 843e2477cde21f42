import type { Kernels } from '@ringwire/common';

/** The addon's kernels: ringwire's one `Kernels` interface (@ringwire/common), natively. */
export interface NativeKernels extends Kernels {
  readonly name: 'native';
  /** Which compiled table: 'avx2+f16c' or 'portable'. */
  readonly simd: string;
}

/** Name of the table `kernels` uses on this CPU. */
export declare const simd: string;
/** The fastest kernels this CPU can run. */
export declare const kernels: NativeKernels;
/** Every compiled table usable on this CPU, by name ('portable' always, 'avx2+f16c' on x86-64 with AVX2 and F16C). */
export declare const variants: Readonly<Record<string, NativeKernels>>;
/**
 * Maps a file (under /dev/shm) into memory shared with other processes: `create` makes a new file
 * of `bytes` and reserves its pages; otherwise the file must exist with exactly `bytes` and belong
 * to this user. Unmapped when the ArrayBuffer is collected. Linux only: undefined elsewhere.
 */
export declare const mapShared: ((path: string, bytes: number, create: boolean) => ArrayBuffer) | undefined;
