// torch.amp.GradScaler's device kernels (see loss_scale.cuh). The unscale walks the gradient 16
// bytes per access where its address allows (vector_access.cuh): it is one read and one write of
// every parameter gradient per step, as memory-bound as the other elementwise kernels.
#include "launch.cuh"
#include "loss_scale.cuh"
#include "vector_access.cuh"

namespace hookrt::cuda {
namespace {

// Every thread that meets a non-finite value stores the same 1: racing stores agree, so no atomic
// is needed, and a clean gradient leaves the flag as the step's earlier gradients set it.
__global__ void unscale_kernel(int64_t items, VectorSplit split, float* grad, const float* scale,
                               float* found_inf) {
  // The reciprocal in double, rounded once to float, as PyTorch's kernel takes it: a scale that is
  // a power of two gives an exact inverse, and the product below is one correctly rounded multiply.
  const auto inv_scale = static_cast<float>(1.0 / static_cast<double>(*scale));
  bool non_finite = false;
  const auto unscale = [&](float value) {
    non_finite = non_finite || !isfinite(value);
    return inv_scale == 1.0f ? value : __fmul_rn(value, inv_scale);
  };
  map_elements(items, split, unscale, grad, grad);
  if (non_finite) *found_inf = 1.0f;
}

__global__ void update_scale_kernel(float* scale, int32_t* growth_tracker, const float* found_inf,
                                    float growth, float backoff, int32_t growth_interval) {
  if (*found_inf != 0.0f) {
    *scale = __fmul_rn(*scale, backoff);
    *growth_tracker = 0;
    return;
  }
  const int32_t successful = *growth_tracker + 1;
  if (successful == growth_interval) {
    // A scale grown past F32 would make every later step overflow: it stays where it is.
    const float grown = __fmul_rn(*scale, growth);
    if (isfinite(grown)) *scale = grown;
    *growth_tracker = 0;
  } else {
    *growth_tracker = successful;
  }
}

}  // namespace

void unscale_gradient(float* grad, int64_t n, const float* scale, float* found_inf,
                      cudaStream_t stream) {
  const VectorSplit split = split_for_vectors(n, grad);
  launch_linear(unscale_kernel, split.items(), stream, split, grad, scale, found_inf);
}

void update_loss_scale(float* scale, int32_t* growth_tracker, const float* found_inf, float growth,
                       float backoff, int32_t growth_interval, cudaStream_t stream) {
  update_scale_kernel<<<1, 1, 0, stream>>>(scale, growth_tracker, found_inf, growth, backoff,
                                           growth_interval);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hookrt::cuda
