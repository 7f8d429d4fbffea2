// Inference-mode batch norm's saved statistics and backward (see batchnorm_inference.cuh).
#include <cub/block/block_reduce.cuh>

#include "batchnorm_inference.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

constexpr int kChannelBlock = 256;

__global__ void saved_stats_kernel(int64_t channels, const float* running_mean, const float* running_var,
                                   float* save_mean, float* save_invstd, double eps) {
  HOOKRT_GRID_STRIDE_LOOP(c, channels) {
    save_mean[c] = running_mean[c];
    save_invstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
  }
}

// The two per-channel sums backward needs.
struct ChannelSums {
  double sum_dy = 0, dot = 0;
};

struct AddChannelSums {
  __device__ ChannelSums operator()(const ChannelSums& a, const ChannelSums& b) const {
    return ChannelSums{a.sum_dy + b.sum_dy, a.dot + b.dot};
  }
};

// Block c handles channel c: element (i, c, j) of (N, C, HW) is at (i * C + c) * HW + j.
__global__ void inference_backward_kernel(const float* dy, const float* x, const float* weight,
                                          const float* save_mean, const float* save_invstd, float* dx,
                                          float* dweight, float* dbias, BatchNormDims d) {
  const int64_t c = blockIdx.x, count = d.n * d.hw;
  const double mean = save_mean[c], invstd = save_invstd[c];
  ChannelSums local;
  for (int64_t k = threadIdx.x; k < count; k += kChannelBlock) {
    const int64_t at = ((k / d.hw) * d.c + c) * d.hw + k % d.hw;
    local.sum_dy += dy[at];
    local.dot += dy[at] * (x[at] - mean);
  }
  using BlockReduce = cub::BlockReduce<ChannelSums, kChannelBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  const ChannelSums total = BlockReduce(temp).Reduce(local, AddChannelSums{});
  if (threadIdx.x == 0) {
    if (dbias) dbias[c] = static_cast<float>(total.sum_dy);
    if (dweight) dweight[c] = static_cast<float>(total.dot * invstd);
  }
  if (!dx) return;
  const float gain = static_cast<float>(invstd * weight[c]);
  for (int64_t k = threadIdx.x; k < count; k += kChannelBlock) {
    const int64_t at = ((k / d.hw) * d.c + c) * d.hw + k % d.hw;
    dx[at] = dy[at] * gain;
  }
}

}  // namespace

void batchnorm_inference_saved_stats(const float* running_mean, const float* running_var, float* save_mean,
                                     float* save_invstd, int64_t channels, double eps, cudaStream_t stream) {
  launch_linear(saved_stats_kernel, channels, stream, running_mean, running_var, save_mean, save_invstd, eps);
}

void batchnorm_inference_backward(const float* dy, const float* x, const float* weight, const float* save_mean,
                                  const float* save_invstd, float* dx, float* dweight, float* dbias,
                                  const BatchNormDims& dims, cudaStream_t stream) {
  if (dims.c == 0) return;
  inference_backward_kernel<<<static_cast<unsigned>(dims.c), kChannelBlock, 0, stream>>>(
      dy, x, weight, save_mean, save_invstd, dx, dweight, dbias, dims);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace hookrt::cuda
