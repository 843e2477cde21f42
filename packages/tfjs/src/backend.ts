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

/** What to install for each backend choice, in the typed error that replaces a bare ERR_MODULE_NOT_FOUND. */
const INSTALL: Record<string, string> = {
  webgpu: 'npm install @tensorflow/tfjs @tensorflow/tfjs-backend-webgpu webgpu',
  'node-gpu': 'npm install @tensorflow/tfjs-node-gpu',
  node: 'npm install @tensorflow/tfjs-node',
  cpu: 'npm install @tensorflow/tfjs',
  auto: 'npm install @tensorflow/tfjs (pure JS; or @tensorflow/tfjs-node, @tensorflow/tfjs-node-gpu)',
};

/** Whether `err` says that `name` itself (not something it imports) is not installed. */
function notInstalled(err: unknown, name: string): boolean {
  const e = err as { code?: string; message?: string };
  return (
    (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') &&
    (e.message ?? '').includes(`'${name}'`)
  );
}

/**
 * Imports an optional peer from the caller's install. A variable specifier keeps TypeScript from
 * resolving it at build time; a missing package becomes an InvalidArgumentError that says what to install.
 */
async function load(name: string, choice: BackendChoice): Promise<Record<string, unknown>> {
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch (err) {
    if (!notInstalled(err, name)) throw err;
    throw new InvalidArgumentError(
      `loadTfjs: ${name} is not installed (backend '${choice}'): ${INSTALL[choice] ?? INSTALL.auto}`,
    );
  }
}

function reason(err: unknown): string {
  if (err instanceof InvalidArgumentError) return 'not installed';
  return ((err as { message?: string })?.message ?? String(err)).split('\n')[0];
}

async function umbrella(choice: BackendChoice): Promise<LoadedTfjs['tf']> {
  const m = (await load('@tensorflow/tfjs', choice)) as { default?: unknown };
  return (m.default ?? m) as LoadedTfjs['tf'];
}

/** Loads TensorFlow.js with the chosen backend (see above) and waits until it is ready. */
export async function loadTfjs(options: { backend?: BackendChoice } = {}): Promise<LoadedTfjs> {
  const choice = (options.backend ?? readEnv('tfjsBackend') ?? 'auto') || 'auto';
  const skipped: string[] = [];
  if (choice === 'webgpu') {
    await installWebGPU((await load('webgpu', choice)) as Parameters<typeof installWebGPU>[0]);
    const tf = await umbrella(choice);
    await load('@tensorflow/tfjs-backend-webgpu', choice);
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
      const m = (await load(name, choice)) as { default?: unknown };
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
  const tf = await umbrella(choice);
  await tf.setBackend('cpu');
  await tf.ready();
  return { tf, backend: tf.getBackend(), source: '@tensorflow/tfjs', skipped };
}
