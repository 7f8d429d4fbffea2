// torch.optim.SGD's _single_tensor_sgd, one thread per element:
//   d_p = grad + weight_decay * p
//   buf = d_p on the first step, else momentum * buf + (1 - dampening) * d_p
//   d_p = d_p + momentum * buf (nesterov) or buf
//   p  -= lr * d_p
// Every product and sum is rounded on its own (__fmul_rn/__fadd_rn stop nvcc from contracting them
// into FMAs), so the result is bit-identical to the CPU reference and to PyTorch's foreach-less path.
#include <cstdint>

#include "hookrt/error.h"
#include "launch.cuh"
#include "sgd.cuh"
#include "tensor_list.cuh"

namespace hookrt::cuda {
namespace {

// The options as the kernel needs them, in F32 as the reference computes.
struct SgdConstants {
  float lr, momentum, keep, weight_decay;
  bool use_momentum, use_weight_decay, nesterov, first_step;
};

__device__ float sgd_step(float p, float grad, float* buffer, const SgdConstants& k) {
  float d_p = grad;
  if (k.use_weight_decay) d_p = __fadd_rn(d_p, __fmul_rn(k.weight_decay, p));
  if (k.use_momentum) {
    const float buf = k.first_step ? d_p : __fadd_rn(__fmul_rn(k.momentum, *buffer), __fmul_rn(k.keep, d_p));
    *buffer = buf;
    d_p = k.nesterov ? __fadd_rn(d_p, __fmul_rn(k.momentum, buf)) : buf;
  }
  return __fsub_rn(p, __fmul_rn(k.lr, d_p));
}

__global__ void sgd_kernel(int64_t n, float* param, const float* grad, float* momentum_buffer, SgdConstants k,
                           const float* skip_if) {
  if (skip_if != nullptr && *skip_if != 0.0f) return;
  float unused = 0.0f;
  HOOKRT_GRID_STRIDE_LOOP(i, n) param[i] = sgd_step(param[i], grad[i], k.use_momentum ? &momentum_buffer[i] : &unused, k);
}

static_assert(sizeof(TensorList<SgdTensorPointers>) <= 4096, "an SGD list fits the launch's parameters");

__global__ void sgd_list_kernel(const __grid_constant__ TensorList<SgdTensorPointers> list, SgdConstants k,
                                const float* skip_if) {
  if (skip_if != nullptr && *skip_if != 0.0f) return;
  const ListPosition at = list_position(list);
  const SgdTensorPointers& p = list.tensors[at.tensor];
  float unused = 0.0f;
  for (int64_t i = at.first; i < p.n; i += at.stride)
    p.param[i] = sgd_step(p.param[i], p.grad[i], k.use_momentum ? &p.momentum_buffer[i] : &unused, k);
}

SgdConstants constants_of(const SgdHyperParameters& o, bool first_step) {
  return SgdConstants{static_cast<float>(o.lr), static_cast<float>(o.momentum), static_cast<float>(1.0 - o.dampening),
                      static_cast<float>(o.weight_decay), o.momentum != 0.0, o.weight_decay != 0.0, o.nesterov,
                      first_step};
}

}  // namespace

void sgd_update(float* param, const float* grad, float* momentum_buffer, int64_t n, bool first_step,
                const SgdHyperParameters& o, const float* skip_if, cudaStream_t stream) {
  const SgdConstants k = constants_of(o, first_step);
  if (n == 0) return;  // an empty parameter's buffer may have no address
  if (k.use_momentum && momentum_buffer == nullptr)
    throw Error("sgd_update: momentum is set but no momentum buffer was given");
  launch_linear(sgd_kernel, n, stream, param, grad, momentum_buffer, k, skip_if);
}

void sgd_update_list(const SgdTensorPointers* tensors, int count, bool first_step, const SgdHyperParameters& o,
                     const float* skip_if, cudaStream_t stream) {
  const SgdConstants k = constants_of(o, first_step);
  const auto check = [&](const SgdTensorPointers& t) {
    if (k.use_momentum && t.momentum_buffer == nullptr)
      throw Error("sgd_update: momentum is set but no momentum buffer was given");
  };
  for_each_tensor_list(tensors, count, check, [&](const TensorList<SgdTensorPointers>& list, int blocks) {
    sgd_list_kernel<<<blocks, kLinearBlock, 0, stream>>>(list, k, skip_if);
    HOOKRT_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace hookrt::cuda
