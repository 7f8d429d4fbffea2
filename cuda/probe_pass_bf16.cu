// The flat, row and common pass kernels over BF16 tensors (see probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

int pass_blocks_per_multiprocessor(__nv_bfloat16, PassKernel kernel) {
  return typed_pass_blocks_per_multiprocessor<__nv_bfloat16>(kernel);
}

void launch_pass(__nv_bfloat16, const PassArgs& args, PassKernel kernel, int blocks,
                 FlatAcc* partials, size_t shared_bytes, cudaStream_t stream) {
  typed_launch_pass<__nv_bfloat16>(args, kernel, blocks, partials, shared_bytes, stream);
}

void launch_batch_pass(__nv_bfloat16, const BatchPassArgs& batch, size_t shared_bytes,
                       cudaStream_t stream) {
  typed_launch_batch_pass<__nv_bfloat16>(batch, shared_bytes, stream);
}

}  // namespace hookrt::cuda::detail
