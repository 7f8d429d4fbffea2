// The flat, row and common pass kernels over F16 tensors (see probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

template int pass_blocks_per_multiprocessor<__half>(PassKernel);
template void launch_pass<__half>(const PassArgs&, PassKernel, int, FlatAcc*, size_t, cudaStream_t);
template void launch_batch_pass<__half>(const BatchPassArgs&, size_t, cudaStream_t);

}  // namespace hookrt::cuda::detail
