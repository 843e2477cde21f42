import { InvalidArgumentError } from '@ringwire/common';

/** Debian/Ubuntu packages the software adapter (Mesa llvmpipe through OpenGL ES) needs. */
export const SOFTWARE_GPU_PACKAGES = ['libegl1', 'libegl-mesa0', 'libgles2', 'libgl1-mesa-dri'];

/** Which WebGPU adapter `installWebGPU` found. */
export interface WebGPUAdapterChoice {
  kind: 'hardware' | 'software';
  /** The adapter's own description (driver and device). */
  description: string;
}

interface Adapter {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
}
interface GPU {
  requestAdapter(options?: Record<string, unknown>): Promise<Adapter | null>;
}
type Dawn = { create: (flags: string[]) => GPU; globals: object };

function describe(a: Adapter): string {
  const i = a.info ?? {};
  return [i.vendor, i.device, i.description].filter(Boolean).join(' / ') || 'unnamed adapter';
}

/**
 * Makes `navigator.gpu` (Dawn's Node bindings, npm `webgpu`) for @tensorflow/tfjs-backend-webgpu:
 * the default (hardware: Vulkan) adapter when there is one, else the software one, Mesa's llvmpipe
 * through OpenGL ES on an EGL surfaceless display in WebGPU compatibility mode (Debian's own Mesa
 * works; its lavapipe is too old for Dawn's Vulkan). Prints one line naming the adapter. Throws
 * InvalidArgumentError naming the system packages to install when neither adapter can be made.
 */
export async function installWebGPU(dawn: Dawn, log = (line: string) => console.error(line)) {
  Object.assign(globalThis, dawn.globals);
  let gpu = dawn.create([]);
  let adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  let kind: WebGPUAdapterChoice['kind'] = 'hardware';
  if (!adapter) {
    // No X or Wayland display on a CI machine: EGL must not look for one.
    process.env.EGL_PLATFORM ??= 'surfaceless';
    const soft = dawn.create(['backend=opengles']);
    // tfjs asks for { powerPreference } only; Dawn offers GL adapters in compatibility mode only.
    const request = soft.requestAdapter.bind(soft);
    soft.requestAdapter = (o = {}) => request({ ...o, featureLevel: 'compatibility' });
    adapter = await soft.requestAdapter();
    gpu = soft;
    kind = 'software';
  }
  if (!adapter)
    throw new InvalidArgumentError(
      'webgpu: no WebGPU adapter: no GPU driver with Vulkan, and no software OpenGL ES (Mesa llvmpipe) either. ' +
        `On Debian/Ubuntu: apt-get install ${SOFTWARE_GPU_PACKAGES.join(' ')} (software), ` +
        'or install the GPU vendor driver with Vulkan support (hardware).',
    );
  Object.defineProperty(globalThis, 'navigator', {
    value: { gpu },
    configurable: true,
    writable: true,
  });
  const choice: WebGPUAdapterChoice = { kind, description: describe(adapter) };
  log(`ringwire: webgpu on the ${kind} adapter: ${choice.description}`);
  return choice;
}
