// torch.amp.GradScaler's device kernels (see loss_scale.cuh). The unscale walks the gradient 16
// bytes per access where its address allows (vector_access.cuh): it is one read and one write of
// every parameter gradient per step, as memory-bound as the other elementwise kernels.
#include "launch.cuh"
#include "loss_scale.cuh"
#include "tensor_list.cuh"
#include "vector_access.cuh"

namespace hookrt::cuda {
namespace {

// The reciprocal in double, rounded once to float, as PyTorch's kernel takes it: a scale that is a
// power of two gives an exact inverse, and unscaled() is one correctly rounded multiply.
__device__ __forceinline__ float inverse_of(const float* scale) {
  return static_cast<float>(1.0 / static_cast<double>(*scale));
}

__device__ __forceinline__ float unscaled(float value, float inv_scale, bool& non_finite) {
  non_finite = non_finite || !isfinite(value);
  return inv_scale == 1.0f ? value : __fmul_rn(value, inv_scale);
}

// Every thread that meets a non-finite value stores the same 1: racing stores agree, so no atomic
// is needed, and a clean gradient leaves the flag as the step's earlier gradients set it.
__global__ void unscale_kernel(int64_t items, VectorSplit split, float* grad, const float* scale,
                               float* found_inf) {
  const float inv_scale = inverse_of(scale);
  bool non_finite = false;
  map_elements(items, split, [&](float value) { return unscaled(value, inv_scale, non_finite); }, grad, grad);
  if (non_finite) *found_inf = 1.0f;
}

// The same on many gradients, one element per thread and step: most of a step's gradients are a
// batch norm's few hundred values, where 16-byte accesses would buy nothing.
__global__ void unscale_list_kernel(const __grid_constant__ TensorList<UnscaleTensor> list, const float* scale,
                                    float* found_inf) {
  const float inv_scale = inverse_of(scale);
  const ListPosition at = list_position(list);
  const UnscaleTensor& t = list.tensors[at.tensor];
  bool non_finite = false;
  for (int64_t i = at.first; i < t.n; i += at.stride) t.grad[i] = unscaled(t.grad[i], inv_scale, non_finite);
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

void unscale_gradients(const UnscaleTensor* grads, int count, const float* scale, float* found_inf,
                       cudaStream_t stream) {
  for_each_tensor_list(grads, count, [](const UnscaleTensor&) {}, [&](const TensorList<UnscaleTensor>& list, int blocks) {
    unscale_list_kernel<<<blocks, kLinearBlock, 0, stream>>>(list, scale, found_inf);
    HOOKRT_CUDA_CHECK(cudaGetLastError());
  });
}

void update_loss_scale(float* scale, int32_t* growth_tracker, const float* found_inf, float growth,
                       float backoff, int32_t growth_interval, cudaStream_t stream) {
  update_scale_kernel<<<1, 1, 0, stream>>>(scale, growth_tracker, found_inf, growth, backoff,
                                           growth_interval);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hookrt::cuda
