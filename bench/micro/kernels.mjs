#!/usr/bin/env node
// Kernel throughput: float32 sum-into (the all-reduce inner loop), float16 sum-into, and
// float32 -> float16 conversion, for the JS kernels and every native table this CPU runs.
//
//   node bench/micro/kernels.mjs [--mib 64] [--runs 5]
//
// GB/s = 1e9 bytes/s of destination bytes (float32 input bytes for the conversion), median of
// --runs timed runs after one warm-up. Buffers are SharedArrayBuffers, as in the engine.
// The kernel sources are compiled on the spot (into the git-ignored bench/results/tmp), so the
// figures are for the current source whatever state the rest of packages/core is in; the native
// addon must be built (npm install, or `npx node-gyp rebuild` in native/).
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { benchArgs } from '../lib/args.mjs';
import { quantile } from '../lib/stats.mjs';

const o = benchArgs('node bench/micro/kernels.mjs [options]', {
  mib: { type: 'number', default: 64, help: 'MiB per array' },
  runs: { type: 'number', default: 5, help: 'timed runs per kernel (median), after one warm-up' },
});
const root = fileURLToPath(new URL('../..', import.meta.url));
const outDir = `${root}bench/results/tmp/kernels`;
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(
  process.execPath,
  [
    tsc,
    '--outDir',
    outDir,
    '--rootDir',
    `${root}packages/core/src`,
    '--module',
    'NodeNext',
    '--moduleResolution',
    'NodeNext',
    '--target',
    'ES2022',
    '--types',
    'node',
    '--skipLibCheck',
    `${root}packages/core/src/kernels/index.ts`,
  ],
  { stdio: 'inherit' },
);
const { jsKernels, nativeKernelVariants, kernelsInfo } = await import(`${outDir}/kernels/index.js`);

const MIB = o.mib;
const RUNS = o.runs;
const BYTES = MIB * 1024 * 1024;

function sharedBytes(bytes, fill) {
  const v = new Uint8Array(new SharedArrayBuffer(bytes));
  fill(v);
  return v;
}
// Small values so repeated sums stay finite and far from denormals.
const f32Data = (v) => {
  const f = new Float32Array(v.buffer);
  for (let i = 0; i < f.length; i++) f[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
};
const f16Data = (v) => {
  const h = new Uint16Array(v.buffer);
  for (let i = 0; i < h.length; i++) h[i] = 0x3000 | ((i * 40503) & 0x3ff); // 0.125 .. 0.25
};

/** Median GB/s of fn() moving `bytes` destination bytes. */
function measure(fn, bytes, runs = RUNS) {
  fn(); // warm-up: JIT, page faults on first touch
  const times = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return bytes / (quantile(times, 0.5) / 1e3) / 1e9;
}

// The loop a user would write by hand: no NaN canonicalization, for comparison with jsKernels.
function plainLoop(dst, src) {
  const d = new Float32Array(dst.buffer, dst.byteOffset, dst.byteLength / 4);
  const s = new Float32Array(src.buffer, src.byteOffset, src.byteLength / 4);
  for (let i = 0; i < d.length; i++) d[i] += s[i];
}

const impls = [
  ['js', jsKernels],
  ...Object.entries(nativeKernelVariants()).map(([n, k]) => [`native ${n}`, k]),
];
const rows = [];

{
  const dst = sharedBytes(BYTES, f32Data);
  const src = sharedBytes(BYTES, f32Data);
  rows.push(['float32 sum-into', 'plain JS loop (reference)', measure(() => plainLoop(dst, src), BYTES)]);
  for (const [name, k] of impls) {
    rows.push(['float32 sum-into', name, measure(() => k.reduceInto('float32', 'sum', dst, src), BYTES)]);
  }
}
{
  const bytes = BYTES / 2; // same element count as the float32 case
  const dst = sharedBytes(bytes, f16Data);
  const src = sharedBytes(bytes, f16Data);
  // dst grows by about 0.2 per sum: stays finite and normal for thousands of runs.
  for (const [name, k] of impls) {
    rows.push(['float16 sum-into', name, measure(() => k.reduceInto('float16', 'sum', dst, src), bytes)]);
  }
}
{
  const src = sharedBytes(BYTES, f32Data);
  const dst = sharedBytes(BYTES / 2, () => {});
  for (const [name, k] of impls)
    rows.push(['f32 -> f16 convert', name, measure(() => k.f32ToF16(src, dst), BYTES)]);
}

const info = kernelsInfo();
console.log(`# ringwire kernels: ${MIB} MiB per array, median of ${RUNS} runs`);
console.log(
  `node ${process.version}, ${process.platform}/${process.arch}; loadKernels() -> ${info.name}${info.simd ? ` (${info.simd})` : ''}${info.reason ? ` (${info.reason})` : ''}`,
);
console.log('');
console.log('| kernel | implementation | GB/s | vs js |');
console.log('|---|---|---:|---:|');
for (const [kernel, name, gbs] of rows) {
  const js = rows.find((r) => r[0] === kernel && r[1] === 'js')[2];
  console.log(`| ${kernel} | ${name} | ${gbs.toFixed(2)} | ${(gbs / js).toFixed(1)}x |`);
}
