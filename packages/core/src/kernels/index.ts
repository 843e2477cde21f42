/**
 * Kernel selection: the @ringwire/native addon when it loads (and RINGWIRE_NO_NATIVE is not '1'),
 * else the pure-JS kernels. Loading is synchronous (createRequire) and attempted once per thread.
 */
import { createRequire } from 'node:module';
import type { Kernels } from '@ringwire/common';
import { readEnv } from '@ringwire/common';
import { jsKernels } from './js.js';

export type { Kernels } from '@ringwire/common';
export { jsKernels } from './js.js';

/** What `ringrun --check` reports about the kernels this process would use. */
export interface KernelsInfo {
  name: 'native' | 'js';
  native: boolean;
  /** Why the JS kernels are used (set only when native is false). */
  reason?: string;
  /** The native table in use, e.g. 'avx2+f16c' or 'portable' (set only when native is true). */
  simd?: string;
}

/** Native kernels also say which compiled table they run. */
export type NativeKernels = Kernels & { readonly simd: string };

interface NativeModule {
  simd: string;
  mapShared?: (path: string, bytes: number, create: boolean) => ArrayBuffer;
  kernels: NativeKernels;
  variants: Readonly<Record<string, NativeKernels>>;
}

let loaded: { mod: NativeModule } | { error: string } | undefined;

function loadNative(): { mod: NativeModule } | { error: string } {
  if (loaded === undefined) {
    try {
      const mod = createRequire(import.meta.url)('@ringwire/native') as NativeModule;
      loaded = { mod };
    } catch (err) {
      // node-gyp-build's message lists every path it tried; the first line says enough.
      const msg = err instanceof Error ? err.message : String(err);
      loaded = { error: `@ringwire/native did not load: ${msg.split('\n')[0]}` };
    }
  }
  return loaded;
}

function disabled(): boolean {
  return readEnv('noNative') === true;
}

/** The native kernels regardless of RINGWIRE_NO_NATIVE, or null when the addon does not load. */
export function nativeKernels(): NativeKernels | null {
  const r = loadNative();
  return 'mod' in r ? r.mod.kernels : null;
}

/** Every native table usable on this CPU by name ('portable', 'avx2+f16c'); empty without the addon. */
export function nativeKernelVariants(): Readonly<Record<string, NativeKernels>> {
  const r = loadNative();
  return 'mod' in r ? r.mod.variants : {};
}

/** The addon's shared-memory mapping (see shared.ts), or null without the addon or with RINGWIRE_NO_NATIVE=1. */
export function nativeMapShared(): NonNullable<NativeModule['mapShared']> | null {
  if (disabled()) return null;
  const r = loadNative();
  return ('mod' in r && r.mod.mapShared) || null;
}

/** The kernels the engine should use. Never throws. */
export function loadKernels(): Kernels {
  if (disabled()) return jsKernels;
  return nativeKernels() ?? jsKernels;
}

let copier: Kernels | undefined;

/** dst.set(src) through this thread's kernels: a memmove natively (see Kernels.copy). */
export function copyBytes(dst: Uint8Array, src: Uint8Array): void {
  (copier ??= loadKernels()).copy(dst, src);
}

let warned = false;

/**
 * Warns once per thread (process.emitWarning, code RINGWIRE_JS_KERNELS) when the addon is absent or
 * failed to load, so a silent fallback to the slower JS kernels cannot go unnoticed; init() calls it.
 * RINGWIRE_NO_NATIVE=1 asks for the JS kernels, so it stays quiet then.
 */
export function warnIfJsKernels(): void {
  if (warned || disabled()) return;
  warned = true;
  const r = loadNative();
  if ('error' in r)
    process.emitWarning(
      `ringwire uses its JS kernels: ${r.error}. Run \`ringrun --check\` for details; ` +
        'to compile the addon: npm explore @ringwire/native -- npm run build; ' +
        'RINGWIRE_NO_NATIVE=1 silences this.',
      { code: 'RINGWIRE_JS_KERNELS' },
    );
}

/** Which kernels this process uses, and why not the native ones (`ringrun --check` prints it). */
export function kernelsInfo(): KernelsInfo {
  if (disabled()) return { name: 'js', native: false, reason: 'RINGWIRE_NO_NATIVE=1' };
  const r = loadNative();
  if ('mod' in r) return { name: 'native', native: true, simd: r.mod.simd };
  return { name: 'js', native: false, reason: r.error };
}
