#pragma once
// The host code's only door into the CUDA backend. cuda/ implements these when the backend is
// built; src/no_cuda.cpp implements them otherwise, so nothing else needs #if.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "device_work_times.h"
#include "hookrt/backend.h"
#include "hookrt/devices.h"

namespace hookrt::cuda {

void fill_build_info(BuildInfo& info);
GpuScan scan_gpus();
// The CUDA backend on options.device, or nullptr where this build has none. Throws Error when the
// device cannot be set up.
std::unique_ptr<Backend> make_backend(const GpuOptions& options = {});

// The GPU work items that one stretch of host code queued, by kind, as CUPTI recorded them, and
// the device time they took by kernel family (device_work_times.h).
struct LaunchCounts {
  int64_t kernels = 0;  // ours, cuDNN's and cuBLAS's alike
  int64_t memcpys = 0;  // host-to-device, device-to-host and device-to-device copies
  int64_t memsets = 0;
  std::vector<DeviceWorkTime> times;  // each kernel family, "memcpy" and "memset": most time first
};
// Runs `work` once and returns the kernels, memcpys and memsets queued in this process (any
// thread, any stream) while it ran, having waited for the current device to finish them. Where
// they cannot be counted (no CUDA backend or no CUPTI in this build, no GPU, CUPTI refusing to
// start: another profiler attached, a sandbox without profiling rights), returns nullopt without
// running `work`, and sets *why_not (when given) to the reason. Exceptions from `work` pass
// through; a CUPTI failure once counting has begun is an Error naming the call.
std::optional<LaunchCounts> count_launches(const std::function<void()>& work, std::string* why_not);

}  // namespace hookrt::cuda
