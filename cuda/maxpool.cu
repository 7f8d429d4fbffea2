// Max pooling forward and backward with PyTorch's indices (see maxpool.cuh).
#include <cuda/std/limits>

#include "activation_types.cuh"
#include "launch.cuh"
#include "maxpool.cuh"

namespace hookrt::cuda {
namespace {

// The kernel-side copy of MaxPoolShape (plain values, no member functions).
struct PoolDims {
  int64_t h, w, p, q;
  int kernel, stride, padding;
};

PoolDims pool_dims(const MaxPoolShape& s) {
  return PoolDims{s.h, s.w, s.p(), s.q(), s.kernel, s.stride, s.padding};
}

template <class T>
__global__ void maxpool_forward_kernel(int64_t outputs, const T* x, T* y, int64_t* indices, PoolDims d) {
  HOOKRT_GRID_STRIDE_LOOP(o, outputs) {
    const int64_t q = o % d.q, p = (o / d.q) % d.p, plane = o / (d.p * d.q);
    const int64_t h_start = p * d.stride - d.padding, w_start = q * d.stride - d.padding;
    const int64_t h0 = max(h_start, int64_t{0}), h1 = min(h_start + d.kernel, d.h);
    const int64_t w0 = max(w_start, int64_t{0}), w1 = min(w_start + d.kernel, d.w);
    const T* in = x + plane * d.h * d.w;
    int64_t best_index = h0 * d.w + w0;
    float best = -::cuda::std::numeric_limits<float>::infinity();
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t w = w0; w < w1; ++w) {
        const float value = load_float(in, h * d.w + w);
        if (value > best || isnan(value)) {
          best = value;
          best_index = h * d.w + w;
        }
      }
    }
    store_float(y, o, best);  // one of x's values: exact
    indices[o] = best_index;
  }
}

// The outputs whose windows cover input row (or column) `i`: [first, last).
__device__ void covering_outputs(int64_t i, int64_t outputs, const PoolDims& d, int64_t& first, int64_t& last) {
  const int64_t padded = i + d.padding;
  first = padded < d.kernel ? 0 : (padded - d.kernel) / d.stride + 1;
  last = min(padded / d.stride + 1, outputs);
}

template <class T>
__global__ void maxpool_backward_kernel(int64_t inputs, const T* dy, const int64_t* indices, T* dx, PoolDims d) {
  HOOKRT_GRID_STRIDE_LOOP(i, inputs) {
    const int64_t w = i % d.w, h = (i / d.w) % d.h, plane = i / (d.h * d.w);
    int64_t p0, p1, q0, q1;
    covering_outputs(h, d.p, d, p0, p1);
    covering_outputs(w, d.q, d, q0, q1);
    const int64_t self = h * d.w + w, base = plane * d.p * d.q;
    float sum = 0.0f;
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t q = q0; q < q1; ++q)
        if (indices[base + p * d.q + q] == self) sum += load_float(dy, base + p * d.q + q);
    store_float(dx, i, sum);
  }
}

}  // namespace

void maxpool2d_forward(const void* x, void* y, int64_t* indices, DType dtype, const MaxPoolShape& s,
                       cudaStream_t stream) {
  with_activation_type(dtype, "maxpool2d_forward", [&](auto element) {
    using T = decltype(element);
    launch_linear(maxpool_forward_kernel<T>, s.n * s.c * s.p() * s.q(), stream, static_cast<const T*>(x),
                  static_cast<T*>(y), indices, pool_dims(s));
  });
}

void maxpool2d_backward(const void* dy, const int64_t* indices, void* dx, DType dtype, const MaxPoolShape& s,
                        cudaStream_t stream) {
  with_activation_type(dtype, "maxpool2d_backward", [&](auto element) {
    using T = decltype(element);
    launch_linear(maxpool_backward_kernel<T>, s.n * s.c * s.h * s.w, stream, static_cast<const T*>(dy), indices,
                  static_cast<T*>(dx), pool_dims(s));
  });
}

}  // namespace hookrt::cuda
