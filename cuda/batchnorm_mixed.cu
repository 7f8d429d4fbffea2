// Batch norm on BF16 or F16 activations with F32 statistics (see batchnorm_mixed.cuh): the per-channel
// finish, the NCHW walks, and the entry points, which run the NCHW walks or the channels-last ones
// (batchnorm_channels_last.cuh) by the dims' format.
//
// NCHW: a channel's values are runs of HW. A sums block adds one channel's share of its values;
// the elementwise passes go in memory order and find each element's channel by division.
#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cstdint>

#include "activation_types.cuh"
#include "batchnorm_channels_last.cuh"
#include "batchnorm_mixed.cuh"
#include "batchnorm_terms.cuh"
#include "fast_divmod.h"
#include "launch.cuh"

namespace hookrt::cuda {

using namespace batchnorm;  // what both layouts' passes compute (batchnorm_terms.cuh)

namespace {

constexpr int kBlock = 256;
// A channel's values are split over blocks until each thread adds about this many of them.
constexpr int64_t kValuesPerThread = 8;
constexpr int64_t kMaxSplits = 128;
constexpr int64_t kMaxGridY = 65535;

struct AddPairs {
  __device__ PairSum operator()(const PairSum& a, const PairSum& b) const {
    return PairSum{a.first + b.first, a.second + b.second};
  }
};

// ---- NCHW sums: block (split, c) adds its share of channel c's values ------------------------

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

using BlockReduce = cub::BlockReduce<PairSum, kBlock>;

// Block (split, c) covers channels c, c + gridDim.y, ... (one each but where C exceeds the grid's
// height); of each, the values this thread adds (for_channel_values).
template <Pass P, class T>
__global__ void nchw_sums_kernel(SumsInputs<T> in, BatchNormDims d, double* partials) {
  __shared__ typename BlockReduce::TempStorage temp;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t c = blockIdx.y; c < d.c; c += gridDim.y) {
    const double centre = channel_centre<P>(in, c, d);
    float scale = 0.0f, shift = 0.0f;
    if constexpr (P == Pass::BackwardThroughRelu) scale = in.scale[c], shift = in.shift[c];
    PairSum local;
    for_channel_values(d, c, first, stride, [&](int64_t at) {
      const float b = is_backward(P) ? load_float(in.b, at) : 0.0f;
      add_value<P>(local, centre, summed_dy<P, T>(load_float(in.a, at), b, scale, shift), b);
    });
    const PairSum total = BlockReduce(temp).Reduce(local, AddPairs{});
    if (threadIdx.x == 0) store_partial(partials, c, blockIdx.x, gridDim.x, total);
    __syncthreads();  // temp is reused by the next channel
  }
}

int64_t nchw_splits(const BatchNormDims& d) {
  const int64_t per_block = kBlock * kValuesPerThread;
  return std::clamp<int64_t>((d.n * d.hw + per_block - 1) / per_block, 1, kMaxSplits);
}

int64_t splits_of(const BatchNormDims& d) {
  return d.format == MemoryFormat::ChannelsLast ? channels_last_splits(d) : nchw_splits(d);
}

// Queues pass P's sums in d's layout into splits_of(d) partials a channel.
template <Pass P, class T>
void launch_sums(const SumsInputs<T>& in, const BatchNormDims& d, double* partials,
                 cudaStream_t stream) {
  if (d.format == MemoryFormat::ChannelsLast) return channels_last_sums<P>(in, d, partials, stream);
  const dim3 grid(static_cast<unsigned>(nchw_splits(d)),
                  static_cast<unsigned>(std::min(d.c, kMaxGridY)));
  nchw_sums_kernel<P, T><<<grid, kBlock, 0, stream>>>(in, d, partials);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

// ---- the per-channel finish, either layout -----------------------------------------------------

// Channel c's two sums: its partials added in split order.
__device__ __forceinline__ PairSum channel_sums(const double* partials, int64_t c, int64_t splits) {
  PairSum total;
  for (int64_t s = 0; s < splits; ++s) {
    total.first += partials[(c * splits + s) * 2];
    total.second += partials[(c * splits + s) * 2 + 1];
  }
  return total;
}

// The scratch: splits_of(d) partial sums a channel, then four F32 coefficients per channel
// for the elementwise pass (forward: scale, shift; backward: gain, centre, grad_mean, projection).
struct Scratch {
  double* partials;     // (C, splits, 2)
  float* coefficients;  // (4, C)
};

// dx's coefficients as rows of C: gain, centre, grad_mean, projection, and through a ReLU the
// forward's scale and shift.
DxCoefficients dx_coefficients(const float* rows, const BatchNormDims& d, bool through_relu) {
  return DxCoefficients{rows,
                        rows + d.c,
                        rows + 2 * d.c,
                        rows + 3 * d.c,
                        through_relu ? rows + 4 * d.c : nullptr,
                        through_relu ? rows + 5 * d.c : nullptr};
}

Scratch scratch_of(void* scratch, const BatchNormDims& d) {
  auto* partials = static_cast<double*>(scratch);
  return Scratch{partials, reinterpret_cast<float*>(partials + d.c * splits_of(d) * 2)};
}

// momentum * batch + (1 - momentum) * running, each product and the sum rounded on its own as
// the CPU reference rounds them (nvcc would otherwise fuse a product into the sum).
__device__ __forceinline__ double running_update(double momentum, double batch, double running) {
  return __dadd_rn(__dmul_rn(momentum, batch), __dmul_rn(1.0 - momentum, running));
}

// One thread per channel: the statistics, the saved and running ones, and the channel's F32 scale
// and shift, y = x * scale + shift, as the CPU reference computes them (the shift's products and
// difference each rounded, as there).
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
      a.running_mean[c] = static_cast<float>(running_update(s.momentum, mean, a.running_mean[c]));
      a.running_var[c] = static_cast<float>(running_update(s.momentum, unbiased_var, a.running_var[c]));
    } else {
      mean = a.running_mean[c];
      invstd = 1.0 / sqrt(static_cast<double>(a.running_var[c]) + s.eps);
    }
    a.save_mean[c] = static_cast<float>(mean);
    a.save_invstd[c] = static_cast<float>(invstd);
    const double weight = a.weight[c];
    scale[c] = static_cast<float>(invstd * weight);
    shift[c] = static_cast<float>(__dsub_rn(a.bias[c], __dmul_rn(__dmul_rn(mean, invstd), weight)));
  }
}

// One thread per channel: dweight, dbias and the channel's F32 coefficients of dx, into rows of
// C: gain, centre, grad_mean, projection, then (through a ReLU: `forward` given) the forward's
// scale and shift, copied for the dx pass.
__global__ void backward_finish_kernel(int64_t channels, BatchNormBackwardArgs a, BatchNormDims d,
                                       BatchNormSettings s, const double* partials, int64_t splits,
                                       float* rows, const float* forward) {
  HOOKRT_GRID_STRIDE_LOOP(c, channels) {
    const double count = static_cast<double>(d.n * d.hw);
    const PairSum sums = channel_sums(partials, c, splits);  // sum_dy, dot
    const double invstd = a.save_invstd[c];
    a.dbias[c] = static_cast<float>(sums.first);
    a.dweight[c] = static_cast<float>(sums.second * invstd);
    const bool training = s.statistics == BatchNormStatistics::Batch;
    rows[c] = static_cast<float>(invstd * a.weight[c]);
    rows[channels + c] = a.save_mean[c];
    rows[2 * channels + c] = training ? static_cast<float>(sums.first / count) : 0.0f;
    rows[3 * channels + c] = training ? static_cast<float>(sums.second * invstd * invstd / count) : 0.0f;
    if (forward) {
      rows[4 * channels + c] = forward[c];
      rows[5 * channels + c] = forward[channels + c];
    }
  }
}

// ---- the NCHW elementwise passes ---------------------------------------------------------------

// The channel of flat element i of (N, C, HW), with FastDivmod where every index fits its
// 31 bits, else by 64-bit division.
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

template <ApplyEpilogue E, class T>
__global__ void nchw_normalize_kernel(int64_t n, const T* x, const T* residual, T* y, const float* scale,
                                      const float* shift, ChannelOf channel) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) {
    const int64_t c = channel(i);
    const float b = E == ApplyEpilogue::AddRelu ? load_float(residual, i) : 0.0f;
    store_float(y, i, after_apply<E, T>(normalized(load_float(x, i), scale[c], shift[c]), b));
  }
}

// kThroughRelu: dy is the ReLU's (dy_through_relu; training only).
template <class T, bool kThroughRelu>
__global__ void nchw_dx_kernel(int64_t n, const T* dy, const T* x, T* dx, DxCoefficients k,
                               ChannelOf channel, bool training) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) {
    const int64_t c = channel(i);
    const float g = load_float(dy, i);
    if (!training) {
      store_float(dx, i, __fmul_rn(g, k.gain[c]));
      continue;
    }
    const float v = load_float(x, i);
    const float through = kThroughRelu ? dy_through_relu<T>(g, v, k.scale[c], k.shift[c]) : g;
    store_float(dx, i, training_dx(through, v, k.gain[c], k.centre[c], k.grad_mean[c], k.projection[c]));
  }
}

template <ApplyEpilogue E, class T>
void launch_normalize(const T* x, const T* residual, T* y, const float* scale, const float* shift,
                      const BatchNormDims& d, cudaStream_t stream) {
  if (d.format == MemoryFormat::ChannelsLast)
    return channels_last_normalize<E>(x, residual, y, scale, shift, d, stream);
  if (d.n * d.c * d.hw == 0) return;  // (channel_of would divide by an empty plane)
  launch_linear(nchw_normalize_kernel<E, T>, d.n * d.c * d.hw, stream, x, residual, y, scale, shift,
                channel_of(d));
}

template <class T>
void launch_dx(const T* dy, const T* x, T* dx, const DxCoefficients& k, const BatchNormDims& d,
               bool training, cudaStream_t stream) {
  if (d.format == MemoryFormat::ChannelsLast)
    return channels_last_dx(dy, x, dx, k, d, training, stream);
  if (d.n * d.c * d.hw == 0) return;  // (channel_of would divide by an empty plane)
  if (k.scale)
    return launch_linear(nchw_dx_kernel<T, true>, d.n * d.c * d.hw, stream, dy, x, dx, k, channel_of(d), training);
  launch_linear(nchw_dx_kernel<T, false>, d.n * d.c * d.hw, stream, dy, x, dx, k, channel_of(d), training);
}

}  // namespace

size_t batchnorm_mixed_scratch_bytes(const BatchNormDims& d) {
  return static_cast<size_t>(d.c * splits_of(d) * 2) * sizeof(double) +
         static_cast<size_t>(4 * d.c) * sizeof(float);
}

void batchnorm_mixed_forward_coefficients(const BatchNormForwardArgs& a, const BatchNormDims& d,
                                          const BatchNormSettings& s, float* coefficients, void* scratch,
                                          cudaStream_t stream) {
  if (d.c == 0) return;
  const Scratch at = scratch_of(scratch, d);
  with_activation_type(a.activations, "batchnorm_forward", [&](auto element) {
    using T = decltype(element);
    const SumsInputs<T> in{static_cast<const T*>(a.x), nullptr, nullptr};
    if (s.statistics == BatchNormStatistics::Batch)
      launch_sums<Pass::Forward>(in, d, at.partials, stream);
    launch_linear(forward_finish_kernel<T>, d.c, stream, a, d, s, at.partials, splits_of(d), coefficients,
                  coefficients + d.c);
  });
}

void batchnorm_mixed_apply(const void* x, void* y, const float* coefficients, DType activations,
                           const BatchNormDims& d, cudaStream_t stream, const void* residual, bool relu) {
  if (d.c == 0) return;
  with_activation_type(activations, "batchnorm_apply", [&](auto element) {
    using T = decltype(element);
    const auto* in = static_cast<const T*>(x);
    const auto* add = static_cast<const T*>(residual);
    auto* out = static_cast<T*>(y);
    const float* scale = coefficients;
    const float* shift = coefficients + d.c;
    if (!relu) return launch_normalize<ApplyEpilogue::None>(in, add, out, scale, shift, d, stream);
    if (!residual) return launch_normalize<ApplyEpilogue::Relu>(in, add, out, scale, shift, d, stream);
    launch_normalize<ApplyEpilogue::AddRelu>(in, add, out, scale, shift, d, stream);
  });
}

void batchnorm_mixed_forward(const BatchNormForwardArgs& a, const BatchNormDims& d,
                             const BatchNormSettings& s, void* scratch, cudaStream_t stream) {
  float* coefficients = scratch_of(scratch, d).coefficients;
  batchnorm_mixed_forward_coefficients(a, d, s, coefficients, scratch, stream);
  batchnorm_mixed_apply(a.x, a.y, coefficients, a.activations, d, stream);
}

void batchnorm_mixed_backward_coefficients(const BatchNormBackwardArgs& a, const BatchNormDims& d,
                                           const BatchNormSettings& s, float* coefficients, void* scratch,
                                           cudaStream_t stream, const float* relu_forward) {
  if (d.c == 0) return;
  const Scratch at = scratch_of(scratch, d);
  with_activation_type(a.activations, "batchnorm_backward", [&](auto element) {
    using T = decltype(element);
    const SumsInputs<T> in{static_cast<const T*>(a.dy), static_cast<const T*>(a.x), a.save_mean,
                           relu_forward, relu_forward ? relu_forward + d.c : nullptr};
    if (relu_forward)
      launch_sums<Pass::BackwardThroughRelu>(in, d, at.partials, stream);
    else
      launch_sums<Pass::Backward>(in, d, at.partials, stream);
    launch_linear(backward_finish_kernel, d.c, stream, a, d, s, at.partials, splits_of(d), coefficients,
                  relu_forward);
  });
}

void batchnorm_mixed_dx(const void* dy, const void* x, void* dx, const float* coefficients, DType activations,
                        const BatchNormDims& d, cudaStream_t stream, bool through_relu) {
  if (d.c == 0) return;
  with_activation_type(activations, "batchnorm_dx", [&](auto element) {
    using T = decltype(element);
    launch_dx(static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx),
              dx_coefficients(coefficients, d, through_relu), d, x != nullptr, stream);
  });
}

void batchnorm_mixed_backward(const BatchNormBackwardArgs& a, const BatchNormDims& d,
                              const BatchNormSettings& s, void* scratch, cudaStream_t stream) {
  float* coefficients = scratch_of(scratch, d).coefficients;
  batchnorm_mixed_backward_coefficients(a, d, s, coefficients, scratch, stream);
  const bool training = s.statistics == BatchNormStatistics::Batch;
  batchnorm_mixed_dx(a.dy, training ? a.x : nullptr, a.dx, coefficients, a.activations, d, stream);
}

}  // namespace hookrt::cuda
