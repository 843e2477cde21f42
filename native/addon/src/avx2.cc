// AVX2 + F16C kernels for x86-64, selected at run time (see Avx2Table). Only functions marked
// RW_AVX2 use those instructions, so this file is safe to compile for the baseline ISA and the
// rest of the addon runs on any x86-64. Loads and stores are unaligned (loadu/storeu); tails use
// the scalar reference from kernels.h, so results match the portable path bit for bit.
#include "kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define RW_AVX2 __attribute__((target("avx2,f16c")))

namespace rw {
namespace {

template <int kOp>
struct ScalarFloatOp;
template <>
struct ScalarFloatOp<kSum> : FSum {};
template <>
struct ScalarFloatOp<kProd> : FProd {};
template <>
struct ScalarFloatOp<kMin> : FMin {};
template <>
struct ScalarFloatOp<kMax> : FMax {};

template <int kOp>
struct ScalarIntOp;
template <>
struct ScalarIntOp<kSum> : ISum {};
template <>
struct ScalarIntOp<kProd> : IProd {};
template <>
struct ScalarIntOp<kMin> : IMin {};
template <>
struct ScalarIntOp<kMax> : IMax {};

// ---- float32 lanes ----

RW_AVX2 inline __m256 CanonPs(__m256 r) {
  const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000));
  return _mm256_blendv_ps(r, qnan, _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
}

// min/max as in FMin/FMax: the compare picks the smaller/larger, equal operands are merged
// bitwise (OR keeps -0 for min, AND keeps +0 for max), then NaN in either operand wins.
template <int kOp>
RW_AVX2 inline __m256 OpPs(__m256 a, __m256 b) {
  if constexpr (kOp == kSum) {
    return CanonPs(_mm256_add_ps(a, b));
  } else if constexpr (kOp == kProd) {
    return CanonPs(_mm256_mul_ps(a, b));
  } else {
    const __m256 pick_a = _mm256_cmp_ps(a, b, kOp == kMin ? _CMP_LT_OQ : _CMP_GT_OQ);
    __m256 r = _mm256_blendv_ps(b, a, pick_a);
    const __m256 same = kOp == kMin ? _mm256_or_ps(a, b) : _mm256_and_ps(a, b);
    r = _mm256_blendv_ps(r, same, _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
    const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000));
    return _mm256_blendv_ps(r, qnan, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
  }
}

template <int kOp>
RW_AVX2 void ReduceF32(uint8_t* d, const uint8_t* s, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    float* pd = reinterpret_cast<float*>(d) + i;
    const float* ps = reinterpret_cast<const float*>(s) + i;
    const __m256 r0 = OpPs<kOp>(_mm256_loadu_ps(pd), _mm256_loadu_ps(ps));
    const __m256 r1 = OpPs<kOp>(_mm256_loadu_ps(pd + 8), _mm256_loadu_ps(ps + 8));
    _mm256_storeu_ps(pd, r0);
    _mm256_storeu_ps(pd + 8, r1);
  }
  for (; i + 8 <= n; i += 8) {
    float* pd = reinterpret_cast<float*>(d) + i;
    _mm256_storeu_ps(pd, OpPs<kOp>(_mm256_loadu_ps(pd), _mm256_loadu_ps(reinterpret_cast<const float*>(s) + i)));
  }
  for (; i < n; i++) {
    Store<float>(d + 4 * i, ScalarFloatOp<kOp>::Apply(Load<float>(d + 4 * i), Load<float>(s + 4 * i)));
  }
}

// ---- float64 lanes ----

template <int kOp>
RW_AVX2 inline __m256d OpPd(__m256d a, __m256d b) {
  const __m256d qnan = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FF8000000000000ll));
  __m256d r;
  if constexpr (kOp == kSum) {
    r = _mm256_add_pd(a, b);
  } else if constexpr (kOp == kProd) {
    r = _mm256_mul_pd(a, b);
  } else {
    const __m256d pick_a = _mm256_cmp_pd(a, b, kOp == kMin ? _CMP_LT_OQ : _CMP_GT_OQ);
    r = _mm256_blendv_pd(b, a, pick_a);
    const __m256d same = kOp == kMin ? _mm256_or_pd(a, b) : _mm256_and_pd(a, b);
    r = _mm256_blendv_pd(r, same, _mm256_cmp_pd(a, b, _CMP_EQ_OQ));
    return _mm256_blendv_pd(r, qnan, _mm256_cmp_pd(a, b, _CMP_UNORD_Q));
  }
  return _mm256_blendv_pd(r, qnan, _mm256_cmp_pd(r, r, _CMP_UNORD_Q));
}

template <int kOp>
RW_AVX2 void ReduceF64(uint8_t* d, const uint8_t* s, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    double* pd = reinterpret_cast<double*>(d) + i;
    _mm256_storeu_pd(pd, OpPd<kOp>(_mm256_loadu_pd(pd), _mm256_loadu_pd(reinterpret_cast<const double*>(s) + i)));
  }
  for (; i < n; i++) {
    Store<double>(d + 8 * i, ScalarFloatOp<kOp>::Apply(Load<double>(d + 8 * i), Load<double>(s + 8 * i)));
  }
}

// ---- integers ----

template <int kOp>
RW_AVX2 inline __m256i OpI32(__m256i a, __m256i b) {
  if constexpr (kOp == kSum) {
    return _mm256_add_epi32(a, b);
  } else if constexpr (kOp == kProd) {
    return _mm256_mullo_epi32(a, b);
  } else if constexpr (kOp == kMin) {
    return _mm256_min_epi32(a, b);
  } else {
    return _mm256_max_epi32(a, b);
  }
}

template <int kOp>
RW_AVX2 inline __m256i OpU8(__m256i a, __m256i b) {
  if constexpr (kOp == kSum) {
    return _mm256_add_epi8(a, b);
  } else if constexpr (kOp == kMin) {
    return _mm256_min_epu8(a, b);
  } else if constexpr (kOp == kMax) {
    return _mm256_max_epu8(a, b);
  } else {
    // No 8-bit multiply: multiply even and odd bytes as 16-bit lanes, keep each low byte.
    const __m256i even = _mm256_mullo_epi16(a, b);
    const __m256i odd = _mm256_mullo_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(b, 8));
    return _mm256_or_si256(_mm256_and_si256(even, _mm256_set1_epi16(0xFF)), _mm256_slli_epi16(odd, 8));
  }
}

template <class T, int kOp>
RW_AVX2 void ReduceInt(uint8_t* d, const uint8_t* s, size_t n) {
  constexpr size_t kLanes = 32 / sizeof(T);
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    __m256i* pd = reinterpret_cast<__m256i*>(d + i * sizeof(T));
    const __m256i a = _mm256_loadu_si256(pd);
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i * sizeof(T)));
    _mm256_storeu_si256(pd, sizeof(T) == 4 ? OpI32<kOp>(a, b) : OpU8<kOp>(a, b));
  }
  for (; i < n; i++) {
    Store<T>(d + i * sizeof(T), ScalarIntOp<kOp>::Apply(Load<T>(d + i * sizeof(T)), Load<T>(s + i * sizeof(T))));
  }
}

// ---- float16 / bfloat16: widen 8 lanes to float32, reuse OpPs, round back ----

RW_AVX2 inline __m256 LoadHalf(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
RW_AVX2 inline void StoreHalf(uint8_t* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

RW_AVX2 inline __m256 LoadBf16(const uint8_t* p) {
  const __m256i x = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16);
  const __m256 f = _mm256_castsi256_ps(x);
  const __m256 nan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);  // quiet any NaN, as BF16ToF32Bits
  return _mm256_or_ps(f, _mm256_and_ps(nan, _mm256_castsi256_ps(_mm256_set1_epi32(0x400000))));
}
RW_AVX2 inline void StoreBf16(uint8_t* p, __m256 v) {
  const __m256i x = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7FFF)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
  // Pack 8 x u32 (each <= 0xFFFF) to u16; packus works per 128-bit lane, so gather qwords 0 and 2.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
}

template <int kOp, __m256 (*Ld)(const uint8_t*), void (*St)(uint8_t*, __m256), uint32_t (*ToF32)(uint16_t),
          uint16_t (*FromF32)(uint32_t)>
RW_AVX2 void ReduceHalf(uint8_t* d, const uint8_t* s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) St(d + 2 * i, OpPs<kOp>(Ld(d + 2 * i), Ld(s + 2 * i)));
  for (; i < n; i++) {
    const float a = BitsToF32(ToF32(Load<uint16_t>(d + 2 * i)));
    const float b = BitsToF32(ToF32(Load<uint16_t>(s + 2 * i)));
    Store<uint16_t>(d + 2 * i, FromF32(F32ToBits(ScalarFloatOp<kOp>::Apply(a, b))));
  }
}

// ---- scale ----

RW_AVX2 void ScaleF32(uint8_t* d, size_t n, double factor) {
  const float f = static_cast<float>(factor);
  const __m256 vf = _mm256_set1_ps(f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float* pd = reinterpret_cast<float*>(d) + i;
    _mm256_storeu_ps(pd, CanonPs(_mm256_mul_ps(_mm256_loadu_ps(pd), vf)));
  }
  for (; i < n; i++) Store<float>(d + 4 * i, Canon<float>(Load<float>(d + 4 * i) * f));
}

RW_AVX2 void ScaleF64(uint8_t* d, size_t n, double f) {
  const __m256d vf = _mm256_set1_pd(f);
  const __m256d qnan = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FF8000000000000ll));
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    double* pd = reinterpret_cast<double*>(d) + i;
    const __m256d r = _mm256_mul_pd(_mm256_loadu_pd(pd), vf);
    _mm256_storeu_pd(pd, _mm256_blendv_pd(r, qnan, _mm256_cmp_pd(r, r, _CMP_UNORD_Q)));
  }
  for (; i < n; i++) Store<double>(d + 8 * i, Canon<double>(Load<double>(d + 8 * i) * f));
}

template <__m256 (*Ld)(const uint8_t*), void (*St)(uint8_t*, __m256), uint32_t (*ToF32)(uint16_t),
          uint16_t (*FromF32)(uint32_t)>
RW_AVX2 void ScaleHalf(uint8_t* d, size_t n, double factor) {
  const float f = static_cast<float>(factor);
  const __m256 vf = _mm256_set1_ps(f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) St(d + 2 * i, CanonPs(_mm256_mul_ps(Ld(d + 2 * i), vf)));
  for (; i < n; i++) {
    const float a = BitsToF32(ToF32(Load<uint16_t>(d + 2 * i)));
    Store<uint16_t>(d + 2 * i, FromF32(F32ToBits(Canon<float>(a * f))));
  }
}

// ---- conversions ----

template <void (*St)(uint8_t*, __m256), uint16_t (*FromF32)(uint32_t)>
RW_AVX2 void FromF32Conv(const uint8_t* src, uint8_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) St(dst + 2 * i, _mm256_loadu_ps(reinterpret_cast<const float*>(src) + i));
  for (; i < n; i++) Store<uint16_t>(dst + 2 * i, FromF32(Load<uint32_t>(src + 4 * i)));
}

template <__m256 (*Ld)(const uint8_t*), uint32_t (*ToF32)(uint16_t)>
RW_AVX2 void ToF32Conv(const uint8_t* src, uint8_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(reinterpret_cast<float*>(dst) + i, Ld(src + 2 * i));
  for (; i < n; i++) Store<uint32_t>(dst + 4 * i, ToF32(Load<uint16_t>(src + 2 * i)));
}

#define RW_HALF LoadHalf, StoreHalf, F16ToF32Bits, F32BitsToF16
#define RW_BF16 LoadBf16, StoreBf16, BF16ToF32Bits, F32BitsToBF16

const Table kAvx2Table = {
    "avx2+f16c",
    {
        {ReduceF32<kSum>, ReduceF32<kProd>, ReduceF32<kMin>, ReduceF32<kMax>},
        {ReduceF64<kSum>, ReduceF64<kProd>, ReduceF64<kMin>, ReduceF64<kMax>},
        {ReduceInt<int32_t, kSum>, ReduceInt<int32_t, kProd>, ReduceInt<int32_t, kMin>, ReduceInt<int32_t, kMax>},
        {ReduceInt<uint8_t, kSum>, ReduceInt<uint8_t, kProd>, ReduceInt<uint8_t, kMin>, ReduceInt<uint8_t, kMax>},
        {ReduceHalf<kSum, RW_HALF>, ReduceHalf<kProd, RW_HALF>, ReduceHalf<kMin, RW_HALF>, ReduceHalf<kMax, RW_HALF>},
        {ReduceHalf<kSum, RW_BF16>, ReduceHalf<kProd, RW_BF16>, ReduceHalf<kMin, RW_BF16>, ReduceHalf<kMax, RW_BF16>},
    },
    {ScaleF32, ScaleF64, nullptr, nullptr, ScaleHalf<RW_HALF>, ScaleHalf<RW_BF16>},
    FromF32Conv<StoreHalf, F32BitsToF16>,
    ToF32Conv<LoadHalf, F16ToF32Bits>,
    FromF32Conv<StoreBf16, F32BitsToBF16>,
    ToF32Conv<LoadBf16, BF16ToF32Bits>,
};

}  // namespace

const Table* Avx2Table() {
  // libgcc's check includes the OS enabling YMM state (XGETBV), not just CPUID bits.
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  }();
  return ok ? &kAvx2Table : nullptr;
}

}  // namespace rw

#else

namespace rw {
const Table* Avx2Table() { return nullptr; }
}  // namespace rw

#endif
