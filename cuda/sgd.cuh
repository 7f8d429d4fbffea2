#pragma once
// One torch.optim.SGD update of n F32 parameters on the device, queued on `stream`.
#include <cuda_runtime.h>

#include <cstdint>


namespace hookrt::cuda {

// torch.optim.SGD's options (hookrt::SgdOptions, restated so that kernel files need no C++20 header).
struct SgdHyperParameters {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
};

// As cpu::sgd_update: momentum_buffer (may be null when momentum is 0) is written with d_p on the
// first step and read afterwards. Rounds exactly as the CPU reference (no fused multiply-adds).
// skip_if (may be null): a device flag (a loss scaler's found_inf) that, when nonzero, makes the
// update write nothing, read by the kernel so that the host need not wait for it.
void sgd_update(float* param, const float* grad, float* momentum_buffer, int64_t n, bool first_step,
                const SgdHyperParameters& options, const float* skip_if, cudaStream_t stream);

// One parameter's pointers in an update of many: n elements each (momentum_buffer may be null
// when momentum is 0).
struct SgdTensorPointers {
  float* param;
  const float* grad;
  float* momentum_buffer;
  int64_t n;
};

// sgd_update of `count` parameters, with the same bits, in one launch for every kTensorListSize
// (tensor_list.cuh) of them: their pointers travel in the launch's parameters, so nothing is
// uploaded first.
void sgd_update_list(const SgdTensorPointers* tensors, int count, bool first_step, const SgdHyperParameters& options,
                     const float* skip_if, cudaStream_t stream);

}  // namespace hookrt::cuda
