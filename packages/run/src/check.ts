import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const TFJS_PACKAGES = ['@tensorflow/tfjs', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-backend-webgpu'];

export interface CheckReport {
  version: string;
  node: string;
  platform: string;
  kernels: { native: boolean; name?: string; simd?: string; reason?: string; source: 'ringwire' | '@ringwire/native' };
  tfjs: { name: string; installed: boolean; version?: string }[];
}

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

async function kernels(cwd: string): Promise<CheckReport['kernels']> {
  const core = resolveFrom('ringwire', cwd);
  let coreError = 'ringwire is not installed (or not built)';
  if (core) {
    try {
      const mod = (await import(pathToFileURL(core).href)) as { kernelsInfo?: () => { name: string; native: boolean; reason?: string; simd?: string } };
      if (typeof mod.kernelsInfo === 'function') return { ...mod.kernelsInfo(), source: 'ringwire' };
      coreError = 'ringwire does not export kernelsInfo()';
    } catch (err) {
      coreError = `ringwire did not load: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  // Without the core, ask the addon directly.
  try {
    const nativePath = resolveFrom('@ringwire/native', cwd);
    if (!nativePath) throw new Error('@ringwire/native is not installed');
    const mod = createRequire(import.meta.url)(nativePath) as { simd?: string };
    return { native: true, name: 'native', simd: mod.simd, source: '@ringwire/native', reason: `checked without the core (${coreError})` };
  } catch (err) {
    return { native: false, name: 'js', source: '@ringwire/native', reason: `${(err as Error).message.split('\n')[0]} (${coreError})` };
  }
}

export async function check(cwd = process.cwd()): Promise<CheckReport> {
  return {
    version: ownVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    kernels: await kernels(cwd),
    tfjs: TFJS_PACKAGES.map((name) => {
      const entry = resolveFrom(name, cwd);
      return entry ? { name, installed: true, version: packageVersion(entry, name) } : { name, installed: false };
    }),
  };
}

export function formatCheck(r: CheckReport): string {
  const k = r.kernels;
  const lines = [
    `ringrun ${r.version} (node ${r.node}, ${r.platform})`,
    k.native ? `native kernels: yes${k.simd ? ` (${k.simd})` : ''}${k.reason ? `; ${k.reason}` : ''}` : `native kernels: no, using JS kernels: ${k.reason ?? 'unknown reason'}`,
    'TensorFlow.js backends:',
    ...r.tfjs.map((t) => `  ${t.name}: ${t.installed ? `installed${t.version ? ` ${t.version}` : ''}` : 'not installed'}`),
  ];
  return lines.join('\n') + '\n';
}
