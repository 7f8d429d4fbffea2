#pragma once
// The device element types of float tensors (float, __nv_bfloat16, __half) and their conversions:
// values widen to float exactly, and round to nearest even when stored, with a NaN stored as the
// host's float_to_bfloat16 and float_to_half store it (src/tensor.cpp). The probe passes and our op
// kernels both convert through these, so a 16-bit value the GPU writes has the CPU's bits.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

namespace hookrt::cuda {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

// An F16 value's bits widened as the host's half_to_float widens them: the conversion instruction
// for numbers, and a NaN by its bits (sign, and the payload at the top of the mantissa), which the
// instruction is not documented to keep, so that ReLU and max pooling pass it on as the CPU does.
__device__ __forceinline__ float widen_half_bits(unsigned bits) {
  const unsigned h = bits & 0xFFFFu;
  if ((h & 0x7FFFu) > 0x7C00u) return __uint_as_float(((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13));
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
}

// A value of T from its bits, and back: shifts and conversions on registers, so that a chunk's
// values never go through memory to change type. A 16-bit value's bits are the low half of the
// unsigned; a float's are all of it, unchanged both ways (a NaN keeps every bit). Narrowing to 16
// bits rounds to nearest even, and a NaN keeps its sign as the host's float_to_bfloat16 and
// float_to_half keep it (bfloat16 keeps its payload too, so a quiet NaN a kernel only read is
// stored with its bits), where the conversion intrinsics would store one canonical NaN: the GPU
// then writes the bits the CPU writes.
template <class T>
__device__ __forceinline__ float widen_bits(unsigned bits) {
  if constexpr (std::is_same_v<T, float>) return __uint_as_float(bits);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __uint_as_float(bits << 16);
  else return widen_half_bits(bits);
}
template <class T>
__device__ __forceinline__ unsigned narrow_bits(float x) {
  const unsigned wide = __float_as_uint(x);
  if constexpr (std::is_same_v<T, float>) {
    return wide;
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (isnan(x)) return (wide >> 16) | 0x40u;
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  } else {
    if (isnan(x)) return ((wide >> 16) & 0x8000u) | 0x7E00u;
    return __half_as_ushort(__float2half_rn(x));
  }
}

// The T with these bits (a 16-bit type's in the low half), as they are.
template <class T>
__device__ __forceinline__ T from_bits(unsigned bits) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __ushort_as_bfloat16(static_cast<unsigned short>(bits));
  else if constexpr (std::is_same_v<T, __half>)
    return __ushort_as_half(static_cast<unsigned short>(bits));
  else
    return __uint_as_float(bits);
}

// x stored as a T: rounded to nearest even, NaN bits as narrow_bits gives them.
template <class T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>)
    return from_bits<T>(narrow_bits<T>(x));
  else
    return x;
}

// x as a T stores it (cpu::round_to_dtype): what a changing probe's float result becomes. (A NaN
// stays a NaN; only stores need narrow_bits' NaN bits.)
template <class T>
__device__ __forceinline__ float round_to(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(__float2bfloat16_rn(x));
  else if constexpr (std::is_same_v<T, __half>) return __half2float(__float2half_rn(x));
  else return x;
}

// What a store of x into a T holds, as a float: x rounded to nearest even. A NaN stays the NaN it
// is, so that the pass's store of it (narrow_bits) has the bits the op's own kernel stores.
template <class T>
__device__ __forceinline__ float stored_value(float x) {
  return isnan(x) ? x : round_to<T>(x);
}

}  // namespace hookrt::cuda
