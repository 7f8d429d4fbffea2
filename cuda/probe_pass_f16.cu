// The flat, row and common pass kernels over F16 tensors (see probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

int pass_blocks_per_multiprocessor(__half, PassKernel kernel) {
  return typed_pass_blocks_per_multiprocessor<__half>(kernel);
}

void launch_pass(__half, const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials,
                 size_t shared_bytes, cudaStream_t stream) {
  typed_launch_pass<__half>(args, kernel, blocks, partials, shared_bytes, stream);
}

void launch_batch_pass(__half, const BatchPassArgs& batch, size_t shared_bytes,
                       cudaStream_t stream) {
  typed_launch_batch_pass<__half>(batch, shared_bytes, stream);
}

}  // namespace hookrt::cuda::detail
