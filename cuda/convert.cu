// Conversion between float dtypes (see convert.cuh).
#include <string>
#include <type_traits>

#include "convert.cuh"
#include "element_types.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

// x widened to float as the host's Tensor::to widens it: exactly, but for a NaN, which comes back
// quiet with its sign and payload (Tensor::to goes through double, and the host's conversion from
// float to double sets the quiet bit of a signaling NaN).
template <class From>
__device__ __forceinline__ float widen_as_host(From x) {
  float wide;
  if constexpr (std::is_same_v<From, __half>) {
    const unsigned h = __half_as_ushort(x);
    if ((h & 0x7C00u) != 0x7C00u || (h & 0x3FFu) == 0) return __half2float(x);
    // half_to_float's NaN: sign, all-ones exponent, the payload in the top of the mantissa.
    wide = __uint_as_float(((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13));
  } else if constexpr (std::is_same_v<From, __nv_bfloat16>) {
    wide = widen_bits<From>(__bfloat16_as_ushort(x));
  } else {
    wide = x;
  }
  return isnan(wide) ? __uint_as_float(__float_as_uint(wide) | 0x400000u) : wide;
}

template <class From, class To>
__global__ void convert_kernel(int64_t n, const From* src, To* dst) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) dst[i] = from_float<To>(widen_as_host(src[i]));
}

// Calls fn with a value of dtype's device type, for the dtypes convert takes; nothing for others.
template <class Fn>
void with_float_type(DType dtype, Fn fn) {
  switch (dtype) {
    case DType::F32: return fn(float{});
    case DType::BF16: return fn(__nv_bfloat16{});
    case DType::F16: return fn(__half{});
    default: return;
  }
}

}  // namespace

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
             cudaStream_t stream) {
  bool launched = false;
  if (src_dtype != dst_dtype) {
    with_float_type(src_dtype, [&](auto from) {
      using From = decltype(from);
      with_float_type(dst_dtype, [&](auto to) {
        using To = decltype(to);
        launch_linear(convert_kernel<From, To>, n, stream, static_cast<const From*>(src),
                      static_cast<To*>(dst));
        launched = true;
      });
    });
  }
  if (!launched)
    throw Error("convert: no conversion from " + dtype_name(src_dtype) + " to " +
                dtype_name(dst_dtype) + " on the CUDA device (it converts F32, BF16 and F16)");
}

}  // namespace hookrt::cuda
