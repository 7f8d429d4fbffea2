#pragma once
// The kernel of one planned pass of the fused probe engine, behind its host launcher (a kernel is
// not visible from another .cu file without relocatable device code, which the build leaves off).
#include <cuda_runtime.h>

#include "probe_accumulators.cuh"
#include "probe_pass_args.cuh"

namespace hookrt::cuda::detail {

// Queues the pass on `stream` as `blocks` blocks of kBlock threads; block b leaves op k's flat
// partial at partials[b * kMaxOps + k]. rows: the row walk, for a pass with a channels probe;
// its finishing kernels follow (probe_finish.cuh). A flat pass finishes itself and writes the
// slot, given args.done and its ops' counters zeroed, which it leaves zeroed. Shared memory is
// sized from args.shared_hist_words and args.shared_alive_words. Throws Error if the launch fails.
// Which kernel runs a pass: Rows, the row walk, for a pass with a channels probe (its finishing
// kernels follow, probe_finish.cuh); Common, the flat walk with one accumulator, for a pass of
// only stats, nonfinite and at most one zeros (the probes users put everywhere); Flat, the
// general flat walk, for any other pass.
enum class PassKernel { Rows, Flat, Common };
PassKernel pass_kernel_for(const PlannedPass& pass);

// How many blocks of the kernel one multiprocessor holds at once, as its registers allow; throws
// Error if the query fails.
int fused_pass_blocks_per_multiprocessor(PassKernel kernel);

// Queues the pass on `stream` as `blocks` blocks of kBlock threads; block b leaves op k's flat
// partial at partials[b * kMaxOps + k]. A flat pass (Flat, Common) finishes itself and writes
// the slot, given args.done and its ops' counters zeroed, which it leaves zeroed. Shared memory
// is sized from args.shared_hist_words and args.shared_alive_words. Throws Error if the launch
// fails.
void launch_fused_pass(const PassArgs& args, PassKernel kernel, int blocks, FlatAcc* partials,
                       cudaStream_t stream);

}  // namespace hookrt::cuda::detail
