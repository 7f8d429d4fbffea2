// clipnorm's norm pass and its finishing kernel (see probe_clip_norm.cuh). The norm pass applies
// ops [0, end) in registers without their side effects; block partials are summed in a fixed
// order in fp64, so the norm, and the scale, have the same bits on every run on the same GPU.
#include "probe_clip_norm.cuh"

#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "probe_chunks.cuh"
#include "status.h"

namespace hookrt::cuda::detail {
namespace {

// The sum of squares of every element of a tensor of T as ops [0, end) of the pass leave it
// (without their side effects: no masks, no counts, no writes), each change rounded to T as the
// pass stores it.
template <class T>
struct NormVisitor {
  const PassArgs& args;
  int end;
  const float (&scales)[kMaxOps];
  double squares;

  template <int N>
  __device__ __forceinline__ void load(int64_t i, float (&v)[N]) const {
    load_chunk<N>(static_cast<const T*>(args.x) + i, v);
  }

  template <int G, int N>
  __device__ __forceinline__ void work(int64_t, int64_t, float (&group)[G][N]) {
#pragma unroll
    for (int u = 0; u < G; ++u) {
      float (&v)[N] = group[u];
#pragma unroll
      for (int k = 0; k < kMaxOps; ++k) {
        if (k >= end) break;
        const DeviceOp& op = args.ops[k];
#pragma unroll
        for (int j = 0; j < N; ++j) {
          if (op.kind == PlannedOpKind::Clamp) {
            if (v[j] < op.lo) v[j] = op.lo;
            if (v[j] > op.hi) v[j] = op.hi;
          } else if (op.kind == PlannedOpKind::ClipNorm) {
            v[j] = round_to<T>(v[j] * scales[k]);
          }
        }
      }
#pragma unroll
      for (int j = 0; j < N; ++j) squares += static_cast<double>(v[j]) * v[j];
    }
  }
};

template <class T>
__global__ void __launch_bounds__(kBlock) norm_pass_kernel(const PassArgs args, int end, double* partials) {
  float scales[kMaxOps];
#pragma unroll
  for (int k = 0; k < kMaxOps; ++k)
    scales[k] = (k < end && args.ops[k].kind == PlannedOpKind::ClipNorm) ? *args.ops[k].scale : 1.0f;
  NormVisitor<T> visit{args, end, scales, 0.0};
  visit_range(static_cast<const T*>(args.x), 0, args.n, static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x,
              static_cast<int64_t>(gridDim.x) * kBlock, visit);
  using Reduce = cub::BlockReduce<double, kBlock>;
  __shared__ typename Reduce::TempStorage temp;
  const double total = Reduce(temp).Sum(visit.squares);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// cpu::clip_coefficient for gradients of T, in the same arithmetic: float, rounded to T at each
// step.
template <class T>
__device__ __forceinline__ float clip_coefficient(double norm, double max_norm) {
  const float denominator = round_to<T>(round_to<T>(static_cast<float>(norm)) + 1e-6f);
  const float coefficient = round_to<T>(round_to<T>(1.0f / denominator) * static_cast<float>(max_norm));
  return coefficient > 1.0f ? 1.0f : coefficient;
}

// One block: the norm from the block partials in a fixed order, then the scale into the slot and
// the clipnorm's device scale (which the main pass and the gradient transform read).
template <class T>
__global__ void __launch_bounds__(kBlock) norm_finish_kernel(const double* partials, int blocks, double max_norm,
                                                            double* slot, float* scale) {
  double sum = 0;
  for (int b = threadIdx.x; b < blocks; b += kBlock) sum += partials[b];
  using Reduce = cub::BlockReduce<double, kBlock>;
  __shared__ typename Reduce::TempStorage temp;
  const double total = Reduce(temp).Sum(sum);
  if (threadIdx.x != 0) return;
  const double norm = sqrt(total);
  const float coefficient = clip_coefficient<T>(norm, max_norm);
  slot[probe_slot::kClipNormNorm] = norm;
  slot[probe_slot::kClipNormScale] = coefficient;
  *scale = coefficient;
}

}  // namespace

void launch_clip_norm(const PassArgs& args, int end, int blocks, double* partials, double max_norm,
                      double* slot, float* scale, cudaStream_t stream) {
  with_element_type(args.element, [&](auto value) {
    using T = decltype(value);
    norm_pass_kernel<T><<<blocks, kBlock, 0, stream>>>(args, end, partials);
    HOOKRT_CUDA_CHECK(cudaGetLastError());
    norm_finish_kernel<T><<<1, kBlock, 0, stream>>>(partials, blocks, max_norm, slot, scale);
    HOOKRT_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace hookrt::cuda::detail
