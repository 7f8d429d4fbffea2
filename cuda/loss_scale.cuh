#pragma once
// torch.amp.GradScaler's device work: unscaling a gradient while watching it for NaN and Inf, and
// moving the scale after a step. Both read and write their scalars in device memory, so a scaled
// step never waits for the host and records into a CUDA graph like any other kernel.
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

// torch._amp_foreach_non_finite_check_and_unscale_ on one F32 gradient of n elements: each
// element times the reciprocal of *scale (taken in double, rounded to float; left as it is where
// that is 1), and *found_inf = 1 where any element is NaN or +-Inf (never cleared here).
void unscale_gradient(float* grad, int64_t n, const float* scale, float* found_inf, cudaStream_t stream);

// One gradient of an unscale of many.
struct UnscaleTensor {
  float* grad;
  int64_t n;
};

// unscale_gradient of `count` gradients, with the same bits, in one launch for every
// kTensorListSize (tensor_list.cuh) of them.
void unscale_gradients(const UnscaleTensor* grads, int count, const float* scale, float* found_inf,
                       cudaStream_t stream);

// torch._amp_update_scale_, one thread: after an overflow *scale *= backoff and *growth_tracker = 0;
// otherwise the tracker counts good steps and at growth_interval *scale *= growth (kept where
// that is not finite) and the tracker restarts.
void update_loss_scale(float* scale, int32_t* growth_tracker, const float* found_inf, float growth, float backoff,
                       int32_t growth_interval, cudaStream_t stream);

}  // namespace hookrt::cuda
