// The flat, row and common pass kernels over BF16 tensors (see probe_pass_launchers.cuh).
#include "probe_pass_kernels.cuh"

namespace hookrt::cuda::detail {

template int pass_blocks_per_multiprocessor<__nv_bfloat16>(PassKernel);
template void launch_pass<__nv_bfloat16>(const PassArgs&, PassKernel, int, FlatAcc*, size_t,
                                         cudaStream_t);
template void launch_batch_pass<__nv_bfloat16>(const BatchPassArgs&, size_t, cudaStream_t);

}  // namespace hookrt::cuda::detail
