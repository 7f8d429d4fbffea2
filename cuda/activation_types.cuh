#pragma once
// The dtypes backend.h lets activations and their gradients have, F32, BF16 and F16, as the device
// element types our kernels are instantiated for (float, __nv_bfloat16, __half): a launcher takes a
// tensor's bytes and dtype and picks its kernel's instantiation with with_activation_type; the
// kernel loads each value widened to float, computes in float and rounds once when it stores.
// The elementwise kernels move 16 bytes at a time where they can (vector_access.cuh), widening and
// rounding each value of a vector exactly as load_float and store_float do a single one.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "element_types.cuh"
#include "hookrt/error.h"
#include "hookrt/tensor.h"

namespace hookrt::cuda {

// Calls fn with a value of dtype's device element type: float for F32, __nv_bfloat16 for BF16,
// __half for F16.
// The backend checks dtypes before it queues anything, so any other is an internal error.
template <class Fn>
void with_activation_type(DType dtype, const char* op, Fn fn) {
  switch (dtype) {
    case DType::F32: return fn(float{});
    case DType::BF16: return fn(__nv_bfloat16{});
    case DType::F16: return fn(__half{});
    default: break;
  }
  throw Error(std::string("internal: ") + op + " has no kernel for dtype " + dtype_name(dtype));
}

// p[i] widened to float exactly: a BF16 value by its bits (widen_bits), so that a NaN keeps its
// payload whatever the conversion instruction of the device would do with it.
__device__ __forceinline__ float load_float(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_float(const __nv_bfloat16* p, int64_t i) {
  return widen_bits<__nv_bfloat16>(__bfloat16_as_ushort(p[i]));
}
__device__ __forceinline__ float load_float(const __half* p, int64_t i) {
  return widen_bits<__half>(__half_as_ushort(p[i]));
}

// p[i] = v rounded to T, to nearest even (from_float: a NaN stored as the host stores it).
template <class T>
__device__ __forceinline__ void store_float(T* p, int64_t i, float v) {
  p[i] = from_float<T>(v);
}

}  // namespace hookrt::cuda
