// The flat, row and common pass kernels over F32 tensors (see probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

int pass_blocks_per_multiprocessor(float, PassKernel kernel) {
  return typed_pass_blocks_per_multiprocessor<float>(kernel);
}

void launch_pass(float, const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials,
                 size_t shared_bytes, cudaStream_t stream) {
  typed_launch_pass<float>(args, kernel, blocks, partials, shared_bytes, stream);
}

void launch_batch_pass(float, const BatchPassArgs& batch, size_t shared_bytes,
                       cudaStream_t stream) {
  typed_launch_batch_pass<float>(batch, shared_bytes, stream);
}

}  // namespace hookrt::cuda::detail
