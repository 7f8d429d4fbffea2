// Stand-ins for cuda/ in builds without the CUDA backend (HOOKRT_CUDA=OFF or no nvcc/cuDNN).
#include "cuda_entry.h"

#if !HOOKRT_WITH_CUDA

namespace hookrt::cuda {

void fill_build_info(BuildInfo& info) { info.cuda_compiled = false; }

GpuScan scan_gpus() { return {{}, "hookrt was built without the CUDA backend (HOOKRT_CUDA=OFF or nvcc/cuDNN not found)"}; }

std::unique_ptr<Backend> make_backend(const GpuOptions&) { return nullptr; }

std::optional<LaunchCounts> count_launches(const std::function<void()>&, std::string* why_not) {
  if (why_not) *why_not = "this build has no CUDA backend";
  return std::nullopt;
}

}  // namespace hookrt::cuda

#endif
