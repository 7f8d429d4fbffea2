#pragma once
// What the mixed batch-norm kernels compute per value and per channel, whichever layout they walk
// (batchnorm_mixed.cu for NCHW, batchnorm_channels_last.cu for NHWC): the terms of the sums
// passes, where those passes leave their partial sums, and the elementwise formulas with the CPU
// reference's roundings (src/cpu/ops_batchnorm.cpp). Keeping them in one place keeps both layouts'
// results within rounding of one another.
#include <cuda_runtime.h>

#include <cstdint>

#include "activation_types.cuh"
#include "batchnorm_args.h"
#include "relu_math.cuh"

namespace hookrt::cuda::batchnorm {

struct PairSum {
  double first = 0, second = 0;
};

// The two per-channel sums of each pass, in double. Forward: Σ (x - shift) and Σ (x - shift)².
// Backward: Σ dy and Σ dy (x - mean). BackwardThroughRelu: the same backward, of a batch norm
// whose output went to a ReLU unwritten and which took that ReLU's backward over
// (ProducingOp::BatchNormReluDx): its dy is the ReLU's, masked (dy_through_relu).
enum class Pass { Forward, Backward, BackwardThroughRelu };

__host__ __device__ constexpr bool is_backward(Pass p) { return p != Pass::Forward; }

// A sums pass's inputs: `a` is x (forward) or dy (backward); backward also reads `b` = x and the
// saved means, and BackwardThroughRelu the forward's scale and shift.
template <class T>
struct SumsInputs {
  const T* a;
  const T* b;
  const float* mean;
  const float* scale = nullptr;
  const float* shift = nullptr;
};

// One value's terms: a is x (forward) or dy, b is x (backward only), about the channel's centre.
template <Pass P>
__device__ __forceinline__ void add_value(PairSum& sum, double centre, float a, float b) {
  if constexpr (P == Pass::Forward) {
    const double v = static_cast<double>(a) - centre;
    sum.first += v;
    sum.second += v * v;
  } else {
    const double g = a;
    sum.first += g;
    sum.second += g * (static_cast<double>(b) - centre);
  }
}

// Where value (0, c, 0), the channel's first, lies in either layout.
__device__ __forceinline__ int64_t first_value_of(int64_t c, const BatchNormDims& d) {
  return d.format == MemoryFormat::ChannelsLast ? c : c * d.hw;
}

// The value the forward sums are taken about: the channel's first value, so that a mean far from
// zero costs the sums no precision; 0 where that value is not finite, so that an infinity in the
// batch gives an infinite mean and a NaN variance, as the CPU reference's, not NaN everywhere.
// Both layouts take the same value (0, c, 0), so their sums differ only in order.
template <class T>
__device__ __forceinline__ double channel_shift(const T* x, int64_t c, const BatchNormDims& d) {
  const double first = load_float(x, first_value_of(c, d));
  return isfinite(first) ? first : 0.0;
}

// What pass P's sums of channel c are taken about: the shift (forward) or the saved mean.
template <Pass P, class T>
__device__ __forceinline__ double channel_centre(const SumsInputs<T>& in, int64_t c,
                                                 const BatchNormDims& d) {
  if constexpr (P == Pass::Forward)
    return channel_shift(in.a, c, d);
  else
    return in.mean[c];
}

// The partial sums: (C, splits, 2), pair (c, split) written by the block that added it, and added
// in split order by the per-channel finish, so that the result is the same on every run.
__device__ __forceinline__ void store_partial(double* partials, int64_t c, int64_t split,
                                              int64_t splits, const PairSum& sum) {
  partials[(c * splits + split) * 2] = sum.first;
  partials[(c * splits + split) * 2 + 1] = sum.second;
}

// y = x * scale + shift, rounded as the CPU rounds it: a product and a sum, not one fused step.
__device__ __forceinline__ float normalized(float x, float scale, float shift) {
  return __fadd_rn(__fmul_rn(x, scale), shift);
}

// What the apply's pass does after y: nothing, or the ReLU after the batch norm, perhaps with a
// block's residual add before it (ProducingOp's BatchNormApplyRelu and BatchNormApplyAddRelu),
// the batch norm's output then never written. Each value is rounded as those ops on their own
// round it: y to T, and the sum to T once, as relu.cu's residual add and ReLU do (the store
// rounds what this returns).
enum class ApplyEpilogue { None, Relu, AddRelu };

template <ApplyEpilogue E, class T>
__device__ __forceinline__ float after_apply(float y, float residual) {
  if constexpr (E == ApplyEpilogue::None) return y;
  const float stored = stored_value<T>(y);
  if constexpr (E == ApplyEpilogue::Relu) return relu_value(stored);
  return relu_value(stored + residual);
}

// What a batch norm whose output went to a ReLU unwritten gets of that ReLU's dy: dy where the
// ReLU's output is above 0 (relu_grad), that output computed again from x as the apply with its
// ReLU computed and stored it (after_apply): the mask the ReLU's own backward takes from it.
template <class T>
__device__ __forceinline__ float dy_through_relu(float relu_dy, float x, float scale, float shift) {
  return relu_grad(after_apply<ApplyEpilogue::Relu, T>(normalized(x, scale, shift), 0.0f), relu_dy);
}

// The dy pass P sums: dy itself, or through the ReLU (BackwardThroughRelu).
template <Pass P, class T>
__device__ __forceinline__ float summed_dy(float dy, float x, float scale, float shift) {
  if constexpr (P == Pass::BackwardThroughRelu)
    return dy_through_relu<T>(dy, x, scale, shift);
  else
    return dy;
}

// dx's per-channel F32 coefficients: training dx = (dy - grad_mean - (x - centre) * projection)
// * gain; inference dx = dy * gain (grad_mean and projection 0). Through a ReLU (training only),
// dy is dy_through_relu's, with the forward's scale and shift; they are null otherwise.
struct DxCoefficients {
  const float* gain;
  const float* centre;
  const float* grad_mean;
  const float* projection;
  const float* scale = nullptr;
  const float* shift = nullptr;
};

// Training's dx, each step rounded as the CPU rounds it. (Inference's, dy * gain, does not read
// x: an infinite x must not make dx NaN.)
__device__ __forceinline__ float training_dx(float dy, float x, float gain, float centre,
                                             float grad_mean, float projection) {
  const float centred = __fmul_rn(__fsub_rn(x, centre), projection);
  return __fmul_rn(__fsub_rn(__fsub_rn(dy, grad_mean), centred), gain);
}

}  // namespace hookrt::cuda::batchnorm
