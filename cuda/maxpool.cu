// Max pooling forward and backward with PyTorch's indices (see maxpool.cuh).
#include <cuda/std/limits>
#include <type_traits>

#include "activation_types.cuh"
#include "launch.cuh"
#include "maxpool.cuh"

namespace hookrt::cuda {
namespace {

// The kernel-side copy of MaxPoolShape (plain values, no member functions).
struct PoolDims {
  int64_t c, h, w, p, q;
  int kernel, stride, padding;
};

PoolDims pool_dims(const MaxPoolShape& s) {
  return PoolDims{s.c, s.h, s.w, s.p(), s.q(), s.kernel, s.stride, s.padding};
}

// Element (n, c, y, x) of an (N, C, rows, cols) tensor, found from its memory index.
struct Pixel {
  int64_t n, c, y, x;
};

// Which element lies at memory index i, and where an element lies, in NCHW order or, with
// kChannelsLast, NHWC order (channels fastest: adjacent threads take adjacent channels of one
// pixel, so that a warp's loads and stores are coalesced in either order).
template <bool kChannelsLast>
__device__ __forceinline__ Pixel pixel_at(int64_t i, int64_t channels, int64_t rows, int64_t cols) {
  if constexpr (kChannelsLast) {
    const int64_t pixel = i / channels;
    return Pixel{pixel / (rows * cols), i % channels, pixel / cols % rows, pixel % cols};
  } else {
    const int64_t plane = i / (rows * cols);
    return Pixel{plane / channels, plane % channels, i / cols % rows, i % cols};
  }
}

template <bool kChannelsLast>
__device__ __forceinline__ int64_t offset_of(const Pixel& e, int64_t channels, int64_t rows, int64_t cols) {
  if constexpr (kChannelsLast) return ((e.n * rows + e.y) * cols + e.x) * channels + e.c;
  else return ((e.n * channels + e.c) * rows + e.y) * cols + e.x;
}

// One thread per output, in the output's memory order; the window is scanned row by row in either
// layout, so the maximum and its index are the same.
template <class T, bool kChannelsLast>
__global__ void maxpool_forward_kernel(int64_t outputs, const T* x, T* y, int64_t* indices, PoolDims d) {
  HOOKRT_GRID_STRIDE_LOOP(o, outputs) {
    const Pixel out = pixel_at<kChannelsLast>(o, d.c, d.p, d.q);
    const int64_t h_start = out.y * d.stride - d.padding, w_start = out.x * d.stride - d.padding;
    const int64_t h0 = max(h_start, int64_t{0}), h1 = min(h_start + d.kernel, d.h);
    const int64_t w0 = max(w_start, int64_t{0}), w1 = min(w_start + d.kernel, d.w);
    int64_t best_index = h0 * d.w + w0;
    float best = -::cuda::std::numeric_limits<float>::infinity();
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t w = w0; w < w1; ++w) {
        const float value = load_float(x, offset_of<kChannelsLast>(Pixel{out.n, out.c, h, w}, d.c, d.h, d.w));
        if (value > best || isnan(value)) {
          best = value;
          best_index = h * d.w + w;
        }
      }
    }
    store_float(y, o, best);  // one of x's values: exact
    indices[o] = best_index;  // within the plane, whatever the layout (PyTorch's)
  }
}

// The outputs whose windows cover input row (or column) `i`: [first, last).
__device__ void covering_outputs(int64_t i, int64_t outputs, const PoolDims& d, int64_t& first, int64_t& last) {
  const int64_t padded = i + d.padding;
  first = padded < d.kernel ? 0 : (padded - d.kernel) / d.stride + 1;
  last = min(padded / d.stride + 1, outputs);
}

// One thread per input, in the input's memory order, gathering the outputs that chose it in
// increasing (p, q) order in either layout: the same sums, bit for bit.
template <class T, bool kChannelsLast>
__global__ void maxpool_backward_kernel(int64_t inputs, const T* dy, const int64_t* indices, T* dx, PoolDims d) {
  HOOKRT_GRID_STRIDE_LOOP(i, inputs) {
    const Pixel in = pixel_at<kChannelsLast>(i, d.c, d.h, d.w);
    int64_t p0, p1, q0, q1;
    covering_outputs(in.y, d.p, d, p0, p1);
    covering_outputs(in.x, d.q, d, q0, q1);
    const int64_t self = in.y * d.w + in.x;
    float sum = 0.0f;
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t o = offset_of<kChannelsLast>(Pixel{in.n, in.c, p, q}, d.c, d.p, d.q);
        if (indices[o] == self) sum += load_float(dy, o);
      }
    store_float(dx, i, sum);
  }
}

// Calls fn with std::true_type for ChannelsLast, std::false_type for Contiguous.
template <class Fn>
void with_layout(MemoryFormat format, Fn fn) {
  if (format == MemoryFormat::ChannelsLast) return fn(std::true_type{});
  return fn(std::false_type{});
}

}  // namespace

void maxpool2d_forward(const void* x, void* y, int64_t* indices, DType dtype, const MaxPoolShape& s,
                       MemoryFormat format, cudaStream_t stream) {
  with_activation_type(dtype, "maxpool2d_forward", [&](auto element) {
    using T = decltype(element);
    with_layout(format, [&](auto channels_last) {
      launch_linear(maxpool_forward_kernel<T, decltype(channels_last)::value>, s.n * s.c * s.p() * s.q(), stream,
                    static_cast<const T*>(x), static_cast<T*>(y), indices, pool_dims(s));
    });
  });
}

void maxpool2d_backward(const void* dy, const int64_t* indices, void* dx, DType dtype, const MaxPoolShape& s,
                        MemoryFormat format, cudaStream_t stream) {
  with_activation_type(dtype, "maxpool2d_backward", [&](auto element) {
    using T = decltype(element);
    with_layout(format, [&](auto channels_last) {
      launch_linear(maxpool_backward_kernel<T, decltype(channels_last)::value>, s.n * s.c * s.h * s.w, stream,
                    static_cast<const T*>(dy), indices, static_cast<T*>(dx), pool_dims(s));
    });
  });
}

}  // namespace hookrt::cuda
