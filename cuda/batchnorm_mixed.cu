// Batch norm on BF16 activations with F32 statistics (see batchnorm_mixed.cuh).
#include <cub/block/block_reduce.cuh>

#include <algorithm>

#include "activation_types.cuh"
#include "batchnorm_mixed.cuh"
#include "fast_divmod.h"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

constexpr int kBlock = 256;
// A channel's values are split over blocks until each thread adds about this many of them.
constexpr int64_t kValuesPerThread = 8;
constexpr int64_t kMaxSplits = 128;
constexpr int64_t kMaxGridY = 65535;

int64_t splits_of(const BatchNormDims& d) {
  const int64_t per_block = kBlock * kValuesPerThread;
  return std::clamp<int64_t>((d.n * d.hw + per_block - 1) / per_block, 1, kMaxSplits);
}

// The scratch: each (channel, split) block's two partial sums, then four F32 coefficients per
// channel for the elementwise pass (forward: scale, shift; backward: gain, centre, grad_mean,
// projection).
struct Scratch {
  double* partials;     // (C, splits, 2)
  float* coefficients;  // (4, C)
};

Scratch scratch_of(void* scratch, const BatchNormDims& d) {
  auto* partials = static_cast<double*>(scratch);
  return Scratch{partials, reinterpret_cast<float*>(partials + d.c * splits_of(d) * 2)};
}

struct PairSum {
  double first = 0, second = 0;
};

struct AddPairs {
  __device__ PairSum operator()(const PairSum& a, const PairSum& b) const {
    return PairSum{a.first + b.first, a.second + b.second};
  }
};

// Calls fn(at) for the values of channel c that participant `index` of `stride` adds: the channel's
// value k = i * HW + j (sample i, position j) sits at (i * C + c) * HW + j, for k = index,
// index + stride, ... The position advances by additions: no division per value.
template <class Fn>
__device__ __forceinline__ void for_channel_values(const BatchNormDims& d, int64_t c, int64_t index,
                                                   int64_t stride, Fn fn) {
  const int64_t count = d.n * d.hw;
  if (index >= count) return;
  int64_t i = index / d.hw, j = index % d.hw;
  const int64_t step_i = stride / d.hw, step_j = stride % d.hw;
  for (int64_t k = index; k < count; k += stride) {
    fn((i * d.c + c) * d.hw + j);
    i += step_i;
    j += step_j;
    if (j >= d.hw) {
      j -= d.hw;
      ++i;
    }
  }
}

// Block (split, c) of the sums kernels covers channels c, c + gridDim.y, ... (one each but where C
// exceeds the grid's height); of each, the values this thread adds (for_channel_values).
__device__ __forceinline__ int64_t first_value() {
  return static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x;
}
__device__ __forceinline__ int64_t value_stride() {
  return static_cast<int64_t>(gridDim.x) * kBlock;
}

using BlockReduce = cub::BlockReduce<PairSum, kBlock>;

// Stores the block's two sums for channel c as partials[c][split]; temp is free again on return.
__device__ __forceinline__ void store_block_sums(const PairSum& local, double* partials, int64_t c,
                                                 typename BlockReduce::TempStorage& temp) {
  const PairSum total = BlockReduce(temp).Reduce(local, AddPairs{});
  if (threadIdx.x == 0) {
    const int64_t at = (c * gridDim.x + blockIdx.x) * 2;
    partials[at] = total.first;
    partials[at + 1] = total.second;
  }
  __syncthreads();
}

// The value the forward sums are taken about: the channel's first value, so that a mean far from
// zero costs the sums no precision; 0 where that value is not finite, so that an infinity in the
// batch gives an infinite mean and a NaN variance, as the CPU reference's, not NaN everywhere.
template <class T>
__device__ __forceinline__ double channel_shift(const T* x, int64_t c, const BatchNormDims& d) {
  const double first = load_float(x, c * d.hw);
  return isfinite(first) ? first : 0.0;
}

// Forward sums: Σ (x - shift) and Σ (x - shift)².
template <class T>
__global__ void forward_sums_kernel(const T* x, BatchNormDims d, double* partials) {
  __shared__ typename BlockReduce::TempStorage temp;
  for (int64_t c = blockIdx.y; c < d.c; c += gridDim.y) {
    const double shift = channel_shift(x, c, d);
    PairSum local;
    for_channel_values(d, c, first_value(), value_stride(), [&](int64_t at) {
      const double v = static_cast<double>(load_float(x, at)) - shift;
      local.first += v;
      local.second += v * v;
    });
    store_block_sums(local, partials, c, temp);
  }
}

// Backward sums: Σ dy and Σ dy (x - mean).
template <class T>
__global__ void backward_sums_kernel(const T* dy, const T* x, const float* save_mean,
                                     BatchNormDims d, double* partials) {
  __shared__ typename BlockReduce::TempStorage temp;
  for (int64_t c = blockIdx.y; c < d.c; c += gridDim.y) {
    const double mean = save_mean[c];
    PairSum local;
    for_channel_values(d, c, first_value(), value_stride(), [&](int64_t at) {
      const double g = load_float(dy, at);
      local.first += g;
      local.second += g * (static_cast<double>(load_float(x, at)) - mean);
    });
    store_block_sums(local, partials, c, temp);
  }
}

// Channel c's two sums: its partials added in split order.
__device__ __forceinline__ PairSum channel_sums(const double* partials, int64_t c, int64_t splits) {
  PairSum total;
  for (int64_t s = 0; s < splits; ++s) {
    total.first += partials[(c * splits + s) * 2];
    total.second += partials[(c * splits + s) * 2 + 1];
  }
  return total;
}

// One thread per channel: the statistics, the saved and running ones, and the channel's F32 scale
// and shift, y = x * scale + shift, as the CPU reference computes them.
template <class T>
__global__ void forward_finish_kernel(int64_t channels, BatchNormForwardArgs a, BatchNormDims d,
                                      BatchNormSettings s, const double* partials, int64_t splits,
                                      float* scale, float* shift) {
  HOOKRT_GRID_STRIDE_LOOP(c, channels) {
    double mean, invstd;
    if (s.statistics == BatchNormStatistics::Batch) {
      const double count = static_cast<double>(d.n * d.hw);
      const PairSum sums = channel_sums(partials, c, splits);
      const double offset = sums.first / count;  // the mean's distance from the shift
      mean = channel_shift(static_cast<const T*>(a.x), c, d) + offset;
      // Σ (x - mean)², never below 0 by rounding; a NaN (a NaN or an infinity in the batch) stays
      // NaN, where fmax would turn it into 0 and hide the blow-up from every probe downstream.
      const double difference = sums.second - sums.first * offset;
      const double squares = difference < 0.0 ? 0.0 : difference;
      invstd = 1.0 / sqrt(squares / count + s.eps);
      const double unbiased_var = squares / (count - 1);
      a.running_mean[c] =
          static_cast<float>(s.momentum * mean + (1.0 - s.momentum) * a.running_mean[c]);
      a.running_var[c] =
          static_cast<float>(s.momentum * unbiased_var + (1.0 - s.momentum) * a.running_var[c]);
    } else {
      mean = a.running_mean[c];
      invstd = 1.0 / sqrt(static_cast<double>(a.running_var[c]) + s.eps);
    }
    a.save_mean[c] = static_cast<float>(mean);
    a.save_invstd[c] = static_cast<float>(invstd);
    const double weight = a.weight[c];
    scale[c] = static_cast<float>(invstd * weight);
    shift[c] = static_cast<float>(a.bias[c] - mean * invstd * weight);
  }
}

// One thread per channel: dweight, dbias and the channel's F32 coefficients of dx.
__global__ void backward_finish_kernel(int64_t channels, BatchNormBackwardArgs a, BatchNormDims d,
                                       BatchNormSettings s, const double* partials, int64_t splits,
                                       float* gain, float* centre, float* grad_mean,
                                       float* projection) {
  HOOKRT_GRID_STRIDE_LOOP(c, channels) {
    const double count = static_cast<double>(d.n * d.hw);
    const PairSum sums = channel_sums(partials, c, splits);  // sum_dy, dot
    const double invstd = a.save_invstd[c];
    a.dbias[c] = static_cast<float>(sums.first);
    a.dweight[c] = static_cast<float>(sums.second * invstd);
    const bool training = s.statistics == BatchNormStatistics::Batch;
    gain[c] = static_cast<float>(invstd * a.weight[c]);
    centre[c] = a.save_mean[c];
    grad_mean[c] = training ? static_cast<float>(sums.first / count) : 0.0f;
    projection[c] = training ? static_cast<float>(sums.second * invstd * invstd / count) : 0.0f;
  }
}

// The channel of flat element i of (N, C, HW): with FastDivmod where every index fits its 31 bits,
// else by 64-bit division.
struct ChannelOf {
  FastDivmod hw_divisor, c_divisor;
  int64_t hw, c;
  bool fast;
  __device__ __forceinline__ int64_t operator()(int64_t i) const {
    if (fast) return c_divisor.remainder(hw_divisor.divide(static_cast<uint32_t>(i)));
    return (i / hw) % c;
  }
};

ChannelOf channel_of(const BatchNormDims& d) {
  const bool fast = d.n * d.c * d.hw - 1 <= FastDivmod::kMaxDividend;
  return ChannelOf{FastDivmod(static_cast<uint32_t>(fast ? d.hw : 1)),
                   FastDivmod(static_cast<uint32_t>(fast ? d.c : 1)), d.hw, d.c, fast};
}

// y = x * scale + shift, rounded as the CPU rounds it: a product and a sum, not one fused step.
template <class T>
__global__ void normalize_kernel(int64_t n, const T* x, T* y, const float* scale,
                                 const float* shift, ChannelOf channel) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) {
    const int64_t c = channel(i);
    store_float(y, i, __fadd_rn(__fmul_rn(load_float(x, i), scale[c]), shift[c]));
  }
}

// Training: dx = (dy - grad_mean - (x - centre) * projection) * gain, each step rounded as the
// CPU rounds it. Inference: dx = dy * gain, x not read (an infinite x must not make dx NaN).
template <class T>
__global__ void backward_dx_kernel(int64_t n, const T* dy, const T* x, T* dx, const float* gain,
                                   const float* centre, const float* grad_mean,
                                   const float* projection, ChannelOf channel, bool training) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) {
    const int64_t c = channel(i);
    if (!training) {
      store_float(dx, i, __fmul_rn(load_float(dy, i), gain[c]));
      continue;
    }
    const float centred = __fmul_rn(__fsub_rn(load_float(x, i), centre[c]), projection[c]);
    store_float(dx, i,
                __fmul_rn(__fsub_rn(__fsub_rn(load_float(dy, i), grad_mean[c]), centred), gain[c]));
  }
}

dim3 sums_grid(const BatchNormDims& d) {
  return dim3(static_cast<unsigned>(splits_of(d)), static_cast<unsigned>(std::min(d.c, kMaxGridY)));
}

}  // namespace

size_t batchnorm_mixed_scratch_bytes(const BatchNormDims& d) {
  return static_cast<size_t>(d.c * splits_of(d) * 2) * sizeof(double) +
         static_cast<size_t>(4 * d.c) * sizeof(float);
}

void batchnorm_mixed_forward(const BatchNormForwardArgs& a, const BatchNormDims& d,
                             const BatchNormSettings& s, void* scratch, cudaStream_t stream) {
  if (d.c == 0) return;
  const Scratch at = scratch_of(scratch, d);
  float* scale = at.coefficients;
  float* shift = at.coefficients + d.c;
  const int64_t n = d.n * d.c * d.hw;
  with_activation_type(a.activations, "batchnorm_forward", [&](auto element) {
    using T = decltype(element);
    const auto* x = static_cast<const T*>(a.x);
    if (s.statistics == BatchNormStatistics::Batch) {
      forward_sums_kernel<T><<<sums_grid(d), kBlock, 0, stream>>>(x, d, at.partials);
      HOOKRT_CUDA_CHECK(cudaGetLastError());
    }
    launch_linear(forward_finish_kernel<T>, d.c, stream, a, d, s, at.partials, splits_of(d), scale,
                  shift);
    if (n > 0)
      launch_linear(normalize_kernel<T>, n, stream, x, static_cast<T*>(a.y), scale, shift,
                    channel_of(d));
  });
}

void batchnorm_mixed_backward(const BatchNormBackwardArgs& a, const BatchNormDims& d,
                              const BatchNormSettings& s, void* scratch, cudaStream_t stream) {
  if (d.c == 0) return;
  const Scratch at = scratch_of(scratch, d);
  float* gain = at.coefficients;
  float* centre = gain + d.c;
  float* grad_mean = centre + d.c;
  float* projection = grad_mean + d.c;
  const int64_t n = d.n * d.c * d.hw;
  with_activation_type(a.activations, "batchnorm_backward", [&](auto element) {
    using T = decltype(element);
    const auto* dy = static_cast<const T*>(a.dy);
    const auto* x = static_cast<const T*>(a.x);
    backward_sums_kernel<T>
        <<<sums_grid(d), kBlock, 0, stream>>>(dy, x, a.save_mean, d, at.partials);
    HOOKRT_CUDA_CHECK(cudaGetLastError());
    launch_linear(backward_finish_kernel, d.c, stream, a, d, s, at.partials, splits_of(d), gain,
                  centre, grad_mean, projection);
    if (n > 0) {
      launch_linear(backward_dx_kernel<T>, n, stream, dy, x, static_cast<T*>(a.dx), gain, centre,
                    grad_mean, projection, channel_of(d),
                    s.statistics == BatchNormStatistics::Batch);
    }
  });
}

}  // namespace hookrt::cuda
