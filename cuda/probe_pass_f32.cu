// The flat, row and common pass kernels over F32 tensors (see probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

template int pass_blocks_per_multiprocessor<float>(PassKernel);
template void launch_pass<float>(const PassArgs&, PassKernel, int, FlatAcc*, size_t, cudaStream_t);
template void launch_batch_pass<float>(const BatchPassArgs&, size_t, cudaStream_t);

}  // namespace hookrt::cuda::detail
