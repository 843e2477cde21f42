import { InvalidArgumentError, readEnv } from '@ringwire/common';
import { installWebGPU } from './webgpu.js';
/**
 * Picks the best TensorFlow.js available, for examples and benchmarks. Packages are imported
 * dynamically from the caller's install, so none of them is required.
 *
 * RINGWIRE_TFJS_BACKEND (or options.backend):
 *  - 'auto' (default): @tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node, then @tensorflow/tfjs on 'cpu'
 *  - 'webgpu': the `webgpu` package (Dawn's Node bindings) + @tensorflow/tfjs-backend-webgpu, on the
 *    hardware adapter, else Mesa's software one (see webgpu.ts)
 *  - 'node-gpu' | 'node' | 'cpu': exactly that one (fails when it does not load)
 */
export type BackendChoice = 'auto' | 'webgpu' | 'node-gpu' | 'node' | 'cpu';

export interface LoadedTfjs {
  /** The TensorFlow.js namespace (with layers). */
  // biome-ignore lint/suspicious/noExplicitAny: tfjs namespaces differ by package; callers narrow
  tf: any;
  /** tf.getBackend() once ready: 'tensorflow', 'webgpu' or 'cpu'. */
  backend: string;
  /** The package that provided it. */
  source: string;
  /** Why better choices were passed over (auto only). */
  skipped: string[];
}

// A variable specifier keeps TypeScript from resolving optional packages at build time.
const load = (name: string): Promise<Record<string, unknown>> => import(name);

function reason(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') return 'not installed';
  return (e?.message ?? String(err)).split('\n')[0];
}

async function umbrella(): Promise<LoadedTfjs['tf']> {
  const m = (await load('@tensorflow/tfjs')) as { default?: unknown };
  return (m.default ?? m) as LoadedTfjs['tf'];
}

export async function loadTfjs(options: { backend?: BackendChoice } = {}): Promise<LoadedTfjs> {
  const choice = (options.backend ?? readEnv('tfjsBackend') ?? 'auto') || 'auto';
  const skipped: string[] = [];
  if (choice === 'webgpu') {
    await installWebGPU((await load('webgpu')) as Parameters<typeof installWebGPU>[0]);
    const tf = await umbrella();
    await load('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu')))
      throw new InvalidArgumentError('loadTfjs: the webgpu backend did not initialize on its adapter');
    await tf.ready();
    return { tf, backend: tf.getBackend(), source: '@tensorflow/tfjs-backend-webgpu', skipped };
  }
  const nodes =
    choice === 'node-gpu'
      ? ['@tensorflow/tfjs-node-gpu']
      : choice === 'node'
        ? ['@tensorflow/tfjs-node']
        : choice === 'auto'
          ? ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']
          : [];
  for (const name of nodes) {
    try {
      const m = (await load(name)) as { default?: unknown };
      const tf = (m.default ?? m) as LoadedTfjs['tf'];
      await tf.ready();
      return { tf, backend: tf.getBackend(), source: name, skipped };
    } catch (err) {
      if (choice !== 'auto') throw err;
      skipped.push(`${name}: ${reason(err)}`);
    }
  }
  if (choice !== 'auto' && choice !== 'cpu')
    throw new Error(
      `loadTfjs: unknown backend ${JSON.stringify(choice)} (auto, webgpu, node-gpu, node, cpu)`,
    );
  const tf = await umbrella();
  await tf.setBackend('cpu');
  await tf.ready();
  return { tf, backend: tf.getBackend(), source: '@tensorflow/tfjs', skipped };
}
