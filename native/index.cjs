'use strict';
// Loads the addon and exposes each compiled kernel table through the Kernels interface of
// ringwire's core. node-gyp-build picks a local compile (addon/build/Release) first, else the
// prebuild shipped for this platform (addon/prebuilds/<platform>-<arch>). Throws when neither
// exists; ringwire then uses its JS kernels. The build inputs live in addon/, not at the package
// root, because npm runs `node-gyp rebuild` at install time for any package with a root binding.gyp.
const addon = require('node-gyp-build')(require('node:path').join(__dirname, 'addon'));

// Null-prototype maps so names like 'toString' are rejected, not resolved to Object.prototype.
const DTYPE = Object.assign(Object.create(null), {
  float32: 0,
  float64: 1,
  int32: 2,
  uint8: 3,
  float16: 4,
  bfloat16: 5,
});
const OP = Object.assign(Object.create(null), { sum: 0, prod: 1, min: 2, max: 3 });

function dtypeCode(dtype) {
  const c = DTYPE[dtype];
  if (c === undefined) throw new TypeError(`unknown dtype: ${String(dtype)}`);
  return c;
}

function wrap(t) {
  return Object.freeze({
    name: 'native',
    simd: t.name,
    reduceInto(dtype, op, dst, src) {
      const o = OP[op];
      if (o === undefined) throw new TypeError(`unknown op: ${String(op)}`);
      t.reduceInto(dtypeCode(dtype), o, dst, src);
    },
    scale(dtype, dst, factor) {
      t.scale(dtypeCode(dtype), dst, factor);
    },
    copy: t.copy,
    f32ToF16: t.f32ToF16,
    f16ToF32: t.f16ToF32,
    f32ToBf16: t.f32ToBf16,
    bf16ToF32: t.bf16ToF32,
  });
}

const variants = Object.create(null);
for (const name of Object.keys(addon.variants)) variants[name] = wrap(addon.variants[name]);

/** Best table for this CPU ('avx2+f16c' on x86-64 with AVX2 and F16C, else 'portable'). */
exports.simd = addon.best;
exports.kernels = variants[addon.best];
/** Every table compiled in and usable on this CPU, by name; tests compare them with each other. */
exports.variants = Object.freeze(variants);
/** Maps a /dev/shm file shared with other processes (Linux only; undefined elsewhere). */
exports.mapShared = addon.mapShared;
