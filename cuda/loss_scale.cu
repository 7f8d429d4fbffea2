#include "launch.cuh"
#include "loss_scale.cuh"

namespace hookrt::cuda {
namespace {

// Every thread that meets a non-finite value stores the same 1: racing stores agree, so no atomic
// is needed, and a clean gradient leaves the flag as the step's earlier gradients set it.
__global__ void unscale_kernel(int64_t n, float* grad, const float* scale, float* found_inf) {
  const auto inv_scale = static_cast<float>(1.0 / static_cast<double>(*scale));
  bool non_finite = false;
  HOOKRT_GRID_STRIDE_LOOP(i, n) {
    const float value = grad[i];
    non_finite = non_finite || !isfinite(value);
    if (inv_scale != 1.0f) grad[i] = __fmul_rn(value, inv_scale);
  }
  if (non_finite) *found_inf = 1.0f;
}

__global__ void update_scale_kernel(float* scale, int32_t* growth_tracker, const float* found_inf, float growth,
                                    float backoff, int32_t growth_interval) {
  if (*found_inf != 0.0f) {
    *scale = __fmul_rn(*scale, backoff);
    *growth_tracker = 0;
    return;
  }
  const int32_t successful = *growth_tracker + 1;
  if (successful == growth_interval) {
    const float grown = __fmul_rn(*scale, growth);
    if (isfinite(grown)) *scale = grown;
    *growth_tracker = 0;
  } else {
    *growth_tracker = successful;
  }
}

}  // namespace

void unscale_gradient(float* grad, int64_t n, const float* scale, float* found_inf, cudaStream_t stream) {
  launch_linear(unscale_kernel, n, stream, grad, scale, found_inf);
}

void update_loss_scale(float* scale, int32_t* growth_tracker, const float* found_inf, float growth, float backoff,
                       int32_t growth_interval, cudaStream_t stream) {
  update_scale_kernel<<<1, 1, 0, stream>>>(scale, growth_tracker, found_inf, growth, backoff, growth_interval);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hookrt::cuda
