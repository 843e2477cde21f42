// Kernel tables and the scalar reference semantics shared by every code path.
//
// The rules below are mirrored exactly by packages/core/src/kernels/js.ts; tests compare the paths
// bit for bit, so a change here needs the same change there.
//
//  * float reductions (sum, prod, min, max) and scale write any NaN result as the canonical quiet
//    NaN (0x7FC00000, 0x7FF8000000000000, f16 0x7E00, bf16 0x7FC0). NaN payload propagation
//    depends on operand order in hardware and JIT, so canonicalizing is the only rule every path
//    (and every rank, whatever order it reduced in) can follow.
//  * min/max: NaN if either operand is NaN; -0 counts as less than +0 (like Math.min/Math.max).
//  * float16/bfloat16 arithmetic runs in float32, then rounds to nearest even.
//  * conversions keep NaN payloads the way F16C does: the result is quiet (quiet bit set) and
//    keeps the top payload bits (f32->f16/bf16 truncates, f16/bf16->f32 shifts left).
//  * int32 and uint8 sum/prod wrap (two's complement), as C unsigned arithmetic does.
//  * scale multiplies float32/float16/bfloat16 in float32 by (float)factor, float64 in double.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rw {

enum DType { kF32 = 0, kF64, kI32, kU8, kF16, kBF16, kNumDTypes };
enum Op { kSum = 0, kProd, kMin, kMax, kNumOps };

static constexpr size_t kDTypeBytes[kNumDTypes] = {4, 8, 4, 1, 2, 2};

using ReduceFn = void (*)(uint8_t* dst, const uint8_t* src, size_t n);
using ScaleFn = void (*)(uint8_t* dst, size_t n, double factor);
using ConvertFn = void (*)(const uint8_t* src, uint8_t* dst, size_t n);

struct Table {
  const char* name;
  ReduceFn reduce[kNumDTypes][kNumOps];
  ScaleFn scale[kNumDTypes];  // null for integer dtypes
  ConvertFn f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32;
};

extern const Table kPortableTable;
// The AVX2+F16C table, or null when it was not compiled in or this CPU lacks the features.
const Table* Avx2Table();

// ---- scalar reference (internal linkage: each translation unit gets its own copy) ----

template <class T>
static inline T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
static inline void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

static inline float BitsToF32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
static inline uint32_t F32ToBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

template <class T>
static inline T CanonicalNaN();
template <>
inline float CanonicalNaN<float>() {
  return BitsToF32(0x7FC00000u);
}
template <>
inline double CanonicalNaN<double>() {
  const uint64_t b = 0x7FF8000000000000ull;
  double d;
  std::memcpy(&d, &b, 8);
  return d;
}

template <class T>
static inline T Canon(T r) {
  return r == r ? r : CanonicalNaN<T>();
}

// Float ops: one struct per op so kernels are templates the compiler can inline and vectorize.
struct FSum {
  template <class T>
  static inline T Apply(T a, T b) { return Canon<T>(a + b); }
};
struct FProd {
  template <class T>
  static inline T Apply(T a, T b) { return Canon<T>(a * b); }
};
struct FMin {
  template <class T>
  static inline T Apply(T a, T b) {
    if (a != a || b != b) return CanonicalNaN<T>();
    if (a < b) return a;
    if (b < a) return b;
    return std::signbit(a) ? a : b;  // equal: only +-0 differ in bits; prefer -0
  }
};
struct FMax {
  template <class T>
  static inline T Apply(T a, T b) {
    if (a != a || b != b) return CanonicalNaN<T>();
    if (a > b) return a;
    if (b > a) return b;
    return std::signbit(a) ? b : a;  // prefer +0
  }
};

// Integer ops: unsigned arithmetic wraps without undefined behaviour.
struct ISum {
  static inline int32_t Apply(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
  static inline uint8_t Apply(uint8_t a, uint8_t b) { return (uint8_t)(a + b); }
};
struct IProd {
  static inline int32_t Apply(int32_t a, int32_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }
  static inline uint8_t Apply(uint8_t a, uint8_t b) { return (uint8_t)((unsigned)a * (unsigned)b); }
};
struct IMin {
  template <class T>
  static inline T Apply(T a, T b) { return b < a ? b : a; }
};
struct IMax {
  template <class T>
  static inline T Apply(T a, T b) { return b > a ? b : a; }
};

// All-ones when c, else 0. Selects through masks rather than ?: because GCC turns the ternaries
// below back into branches, which stops the portable conversion loops from vectorizing.
static inline uint32_t Mask(bool c) { return 0u - (uint32_t)c; }
static inline uint32_t Select(uint32_t mask, uint32_t a, uint32_t b) { return (a & mask) | (b & ~mask); }

// float32 bits -> float16 bits, round to nearest even. Branch-free so the portable loops
// vectorize; JS computes the same with integer branches (tests compare them).
static inline uint16_t F32BitsToF16(uint32_t x) {
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7FFFFFFFu;
  // Normal half: rebias the exponent, round off 13 mantissa bits (a carry may bump the exponent).
  const uint32_t m = a - 0x38000000u;
  const uint32_t normal = (m + 0xFFFu + ((m >> 13) & 1u)) >> 13;
  // Subnormal half (|x| < 2^-14): adding 0.5f leaves |x| rounded to a multiple of 2^-24 (the ulp
  // of 0.5f) in the low mantissa bits, rounded to nearest even by the FPU; 0x400 (the smallest
  // normal) comes out when it rounds up. Float32 denormals give 0, also under DAZ.
  const uint32_t sub = F32ToBits(BitsToF32(a) + 0.5f) - 0x3F000000u;
  uint32_t r = Select(Mask(a < 0x38800000u), sub, normal);
  r = Select(Mask(a >= 0x477FF000u), 0x7C00u, r);                           // >= 65520 -> Inf (and Inf)
  r = Select(Mask(a > 0x7F800000u), 0x7E00u | ((a >> 13) & 0x3FFu), r);  // NaN: quiet, top payload kept
  return (uint16_t)(sign | r);
}

// float16 bits -> float32 bits (exact; NaN quieted, payload kept).
static inline uint32_t F16ToF32Bits(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7FFFu;
  const uint32_t normal = (em << 13) + 0x38000000u;  // rebias exponent by 127 - 15
  // Subnormal half m * 2^-24: build 2^-14 + m * 2^-24 as a float32 and subtract 2^-14 (exact).
  const uint32_t sub = F32ToBits(BitsToF32((em << 13) + 0x38800000u) - 6.103515625e-05f);
  const uint32_t special = (em << 13) | 0x7F800000u | (Mask(em > 0x7C00u) & 0x400000u);  // Inf, quiet NaN
  uint32_t r = Select(Mask(em < 0x400u), sub, normal);
  r = Select(Mask(em >= 0x7C00u), special, r);
  return sign | r;
}

// float32 bits -> bfloat16 bits, round to nearest even (NaN: quiet, top 7 payload bits kept).
static inline uint16_t F32BitsToBF16(uint32_t x) {
  const uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
  return (uint16_t)Select(Mask((x & 0x7FFFFFFFu) > 0x7F800000u), (x >> 16) | 0x40u, rounded);
}

static inline uint32_t BF16ToF32Bits(uint16_t h) {
  const uint32_t x = (uint32_t)h << 16;
  return x | (Mask((x & 0x7FFFFFFFu) > 0x7F800000u) & 0x400000u);
}

}  // namespace rw
