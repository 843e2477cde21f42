import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readEnv } from '@ringwire/common';

export const TFJS_PACKAGES = [
  '@tensorflow/tfjs',
  '@tensorflow/tfjs-node',
  '@tensorflow/tfjs-node-gpu',
  '@tensorflow/tfjs-backend-webgpu',
];

export interface CheckReport {
  version: string;
  node: string;
  platform: string;
  kernels: {
    native: boolean;
    name?: string;
    simd?: string;
    reason?: string;
    source: 'ringwire' | '@ringwire/native';
  };
  /** Whether same-host workers can exchange payloads through /dev/shm (RINGWIRE_SHM=0 turns it off). */
  sharedMemory: { available: boolean; reason?: string; freeBytes?: number; off?: boolean };
  tfjs: { name: string; installed: boolean; version?: string }[];
}

/** @ringwire/run's own version, from its package.json. */
export function ownVersion(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

/** Resolves a package from the user's project first (the working directory), then from ringrun's own install. */
function resolveFrom(name: string, cwd: string): string | undefined {
  for (const base of [pathToFileURL(join(cwd, 'noop.js')).href, import.meta.url]) {
    try {
      return createRequire(base).resolve(name);
    } catch {
      // not installed there
    }
  }
  return undefined;
}

function packageVersion(entry: string, name: string): string | undefined {
  // exports maps often hide package.json: walk up from the entry point to the package's own folder.
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (!existsSync(pj)) continue;
    const json = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
    if (json.name === name) return json.version;
  }
  return undefined;
}

interface CoreModule {
  kernelsInfo?: () => { name: string; native: boolean; reason?: string; simd?: string };
  sharedMemoryInfo?: () => { available: boolean; reason?: string; freeBytes?: number };
}

/** The user's ringwire (the core), or why it cannot be loaded. */
async function loadCore(cwd: string): Promise<{ mod?: CoreModule; error: string }> {
  const core = resolveFrom('ringwire', cwd);
  if (!core) return { error: 'ringwire is not installed (or not built)' };
  try {
    return { mod: (await import(pathToFileURL(core).href)) as CoreModule, error: '' };
  } catch (err) {
    return { error: `ringwire did not load: ${(err as Error).message.split('\n')[0]}` };
  }
}

function kernels({ mod, error }: { mod?: CoreModule; error: string }, cwd: string): CheckReport['kernels'] {
  let coreError = error;
  if (mod) {
    if (typeof mod.kernelsInfo === 'function') return { ...mod.kernelsInfo(), source: 'ringwire' };
    coreError = 'ringwire does not export kernelsInfo()';
  }
  // Without the core, ask the addon directly.
  try {
    const nativePath = resolveFrom('@ringwire/native', cwd);
    if (!nativePath) throw new Error('@ringwire/native is not installed');
    const addon = createRequire(import.meta.url)(nativePath) as { simd?: string };
    return {
      native: true,
      name: 'native',
      simd: addon.simd,
      source: '@ringwire/native',
      reason: `checked without the core (${coreError})`,
    };
  } catch (err) {
    return {
      native: false,
      name: 'js',
      source: '@ringwire/native',
      reason: `${(err as Error).message.split('\n')[0]} (${coreError})`,
    };
  }
}

function sharedMemory({ mod, error }: { mod?: CoreModule; error: string }): CheckReport['sharedMemory'] {
  if (typeof mod?.sharedMemoryInfo !== 'function')
    return { available: false, reason: error || 'ringwire does not export sharedMemoryInfo()' };
  return { ...mod.sharedMemoryInfo(), ...(readEnv('sharedMemory') === false && { off: true }) };
}

/** What `ringrun --check` reports: versions, kernels, shared memory, ssh. */
export async function check(cwd = process.cwd()): Promise<CheckReport> {
  const core = await loadCore(cwd);
  return {
    version: ownVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    kernels: kernels(core, cwd),
    sharedMemory: sharedMemory(core),
    tfjs: TFJS_PACKAGES.map((name) => {
      const entry = resolveFrom(name, cwd);
      return entry
        ? { name, installed: true, version: packageVersion(entry, name) }
        : { name, installed: false };
    }),
  };
}

/** How to get native kernels where no prebuilt binary fits (prebuilds ship for linux-x64). */
const NATIVE_HINT =
  'prebuilt for linux-x64 (glibc); elsewhere, with python3, make and a C++ compiler: ' +
  'npm explore @ringwire/native -- npm run build';

/** The report as the lines `ringrun --check` prints. */
export function formatCheck(r: CheckReport): string {
  const k = r.kernels;
  const m = r.sharedMemory;
  const lines = [
    `ringrun ${r.version} (node ${r.node}, ${r.platform})`,
    k.native
      ? `native kernels: yes${k.simd ? ` (${k.simd})` : ''}${k.reason ? `; ${k.reason}` : ''}`
      : `native kernels: no, using JS kernels: ${k.reason ?? 'unknown reason'}${
          k.reason === 'RINGWIRE_NO_NATIVE=1' ? '' : ` (${NATIVE_HINT})`
        }`,
    m.off
      ? 'shared memory between same-host workers: off (RINGWIRE_SHM=0)'
      : m.available
        ? `shared memory between same-host workers: yes (/dev/shm, ${((m.freeBytes ?? 0) / 2 ** 30).toFixed(1)} GiB free)`
        : `shared memory between same-host workers: no, using TCP: ${m.reason ?? 'unknown reason'}`,
    'TensorFlow.js backends:',
    ...r.tfjs.map(
      (t) => `  ${t.name}: ${t.installed ? `installed${t.version ? ` ${t.version}` : ''}` : 'not installed'}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
