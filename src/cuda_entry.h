#pragma once
// The host code's only door into the CUDA backend. cuda/ implements these when the backend is
// built; src/no_cuda.cpp implements them otherwise, so nothing else needs #if.
#include <memory>

#include "hookrt/backend.h"
#include "hookrt/devices.h"

namespace hookrt::cuda {

void fill_build_info(BuildInfo& info);
GpuScan scan_gpus();
// The CUDA backend on options.device, or nullptr where this build has none. Throws Error when the
// device cannot be set up.
std::unique_ptr<Backend> make_backend(const GpuOptions& options = {});

}  // namespace hookrt::cuda
