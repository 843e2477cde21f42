// Portable kernels: plain C++ loops the compiler vectorizes for the baseline ISA (SSE2, NEON).
// Views may be unaligned; the vectorizer assumes element alignment for T*, so misaligned data is
// staged through aligned stack blocks instead of being dereferenced as T*.
#include <algorithm>

#include "kernels.h"

namespace rw {
namespace {

constexpr size_t kStage = 1024;  // elements per staging block (8 KiB of float64)

template <class T>
inline bool Aligned(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & (alignof(T) - 1)) == 0;
}

template <class T, class Op>
void ReduceTyped(T* d, const T* s, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = Op::Apply(d[i], s[i]);
}

template <class T, class Op>
void Reduce(uint8_t* d, const uint8_t* s, size_t n) {
  if (Aligned<T>(d) && Aligned<T>(s)) {
    ReduceTyped<T, Op>(reinterpret_cast<T*>(d), reinterpret_cast<const T*>(s), n);
    return;
  }
  alignas(64) T bd[kStage];
  alignas(64) T bs[kStage];
  for (size_t i = 0; i < n; i += kStage) {
    const size_t m = std::min(kStage, n - i);
    std::memcpy(bd, d + i * sizeof(T), m * sizeof(T));
    std::memcpy(bs, s + i * sizeof(T), m * sizeof(T));
    ReduceTyped<T, Op>(bd, bs, m);
    std::memcpy(d + i * sizeof(T), bd, m * sizeof(T));
  }
}

// float16/bfloat16: widen a block to float32, reduce there, round back.
template <uint32_t (*ToF32)(uint16_t)>
inline void Widen(const uint8_t* p, float* out, size_t m) {
  for (size_t j = 0; j < m; j++) out[j] = BitsToF32(ToF32(Load<uint16_t>(p + 2 * j)));
}
template <uint16_t (*FromF32)(uint32_t)>
inline void Narrow(const float* in, uint8_t* p, size_t m) {
  for (size_t j = 0; j < m; j++) Store<uint16_t>(p + 2 * j, FromF32(F32ToBits(in[j])));
}

template <uint32_t (*ToF32)(uint16_t), uint16_t (*FromF32)(uint32_t), class Op>
void ReduceHalf(uint8_t* d, const uint8_t* s, size_t n) {
  alignas(64) float fd[kStage];
  alignas(64) float fs[kStage];
  for (size_t i = 0; i < n; i += kStage) {
    const size_t m = std::min(kStage, n - i);
    Widen<ToF32>(d + 2 * i, fd, m);
    Widen<ToF32>(s + 2 * i, fs, m);
    ReduceTyped<float, Op>(fd, fs, m);
    Narrow<FromF32>(fd, d + 2 * i, m);
  }
}

template <class T>
void ScaleTyped(T* d, size_t n, T f) {
  for (size_t i = 0; i < n; i++) d[i] = Canon<T>(d[i] * f);
}

template <class T>
void Scale(uint8_t* d, size_t n, double factor) {
  const T f = static_cast<T>(factor);
  if (Aligned<T>(d)) {
    ScaleTyped<T>(reinterpret_cast<T*>(d), n, f);
    return;
  }
  alignas(64) T bd[kStage];
  for (size_t i = 0; i < n; i += kStage) {
    const size_t m = std::min(kStage, n - i);
    std::memcpy(bd, d + i * sizeof(T), m * sizeof(T));
    ScaleTyped<T>(bd, m, f);
    std::memcpy(d + i * sizeof(T), bd, m * sizeof(T));
  }
}

template <uint32_t (*ToF32)(uint16_t), uint16_t (*FromF32)(uint32_t)>
void ScaleHalf(uint8_t* d, size_t n, double factor) {
  const float f = static_cast<float>(factor);
  alignas(64) float fd[kStage];
  for (size_t i = 0; i < n; i += kStage) {
    const size_t m = std::min(kStage, n - i);
    Widen<ToF32>(d + 2 * i, fd, m);
    ScaleTyped<float>(fd, m, f);
    Narrow<FromF32>(fd, d + 2 * i, m);
  }
}

template <uint16_t (*FromF32)(uint32_t)>
void ConvertFromF32(const uint8_t* src, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) Store<uint16_t>(dst + 2 * i, FromF32(Load<uint32_t>(src + 4 * i)));
}
template <uint32_t (*ToF32)(uint16_t)>
void ConvertToF32(const uint8_t* src, uint8_t* dst, size_t n) {
  for (size_t i = 0; i < n; i++) Store<uint32_t>(dst + 4 * i, ToF32(Load<uint16_t>(src + 2 * i)));
}

#define RW_HALF F16ToF32Bits, F32BitsToF16
#define RW_BF16 BF16ToF32Bits, F32BitsToBF16

}  // namespace

const Table kPortableTable = {
    "portable",
    {
        {Reduce<float, FSum>, Reduce<float, FProd>, Reduce<float, FMin>, Reduce<float, FMax>},
        {Reduce<double, FSum>, Reduce<double, FProd>, Reduce<double, FMin>, Reduce<double, FMax>},
        {Reduce<int32_t, ISum>, Reduce<int32_t, IProd>, Reduce<int32_t, IMin>, Reduce<int32_t, IMax>},
        {Reduce<uint8_t, ISum>, Reduce<uint8_t, IProd>, Reduce<uint8_t, IMin>, Reduce<uint8_t, IMax>},
        {ReduceHalf<RW_HALF, FSum>, ReduceHalf<RW_HALF, FProd>, ReduceHalf<RW_HALF, FMin>,
         ReduceHalf<RW_HALF, FMax>},
        {ReduceHalf<RW_BF16, FSum>, ReduceHalf<RW_BF16, FProd>, ReduceHalf<RW_BF16, FMin>,
         ReduceHalf<RW_BF16, FMax>},
    },
    {Scale<float>, Scale<double>, nullptr, nullptr, ScaleHalf<RW_HALF>, ScaleHalf<RW_BF16>},
    ConvertFromF32<F32BitsToF16>,
    ConvertToF32<F16ToF32Bits>,
    ConvertFromF32<F32BitsToBF16>,
    ConvertToF32<BF16ToF32Bits>,
};

}  // namespace rw
