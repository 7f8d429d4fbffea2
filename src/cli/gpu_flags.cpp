#include "cli/gpu_flags.h"

namespace hookrt::cli {

void add_gpu_flags(CLI::App& cmd, GpuFlags& flags) {
  cmd.add_flag("--no-tf32", flags.no_tf32,
               "GPU: full F32 convolutions (TF32 is allowed for them by default, as in PyTorch; GEMMs are full F32 either way)");
  cmd.add_flag("--heuristic-conv", flags.heuristic_conv,
               "GPU: cuDNN's heuristic convolution algorithms rather than the fastest measured");
  cmd.add_flag("--deterministic", flags.deterministic,
               "GPU: only convolution algorithms that give the same bits on every run (as PyTorch's "
               "cudnn.deterministic)");
  cmd.add_flag("--own-batchnorm", flags.own_batchnorm,
               "GPU: fp32 batch norms on hookrt's kernels rather than cuDNN's, as bf16 and fp16 ones are, so "
               "that probes on convolution outputs and batch-norm gradients run in their passes");
}

GpuOptions gpu_options(const GpuFlags& flags) {
  GpuOptions options;
  options.allow_tf32 = !flags.no_tf32;
  options.measure_conv_algorithms = !flags.heuristic_conv;
  options.deterministic = flags.deterministic;
  options.own_f32_batchnorm = flags.own_batchnorm;
  return options;
}

}  // namespace hookrt::cli
