#include "support/gpu.h"

#include "cuda_entry.h"
#include "hookrt/devices.h"

namespace hookrt::testing {

GpuForTests make_gpu_backend_for_tests() {
  const GpuScan scan = scan_gpus();
  if (!scan.problem.empty()) return {nullptr, "GPU test skipped: " + scan.problem};
  GpuOptions options;
  options.allow_tf32 = false;  // the CPU reference computes full F32 products
  return {cuda::make_backend(options), ""};
}

}  // namespace hookrt::testing
