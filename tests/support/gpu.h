#pragma once
// The CUDA backend for GPU tests: full F32 (TF32 off) on device 0, or the reason there is none, so
// that a test can GTEST_SKIP with it on machines without a GPU or without the CUDA build.
#include <cstdint>
#include <memory>
#include <string>

#include "hookrt/backend.h"
#include "hookrt/devices.h"

namespace hookrt::testing {

struct GpuForTests {
  std::unique_ptr<Backend> backend;  // nullptr when `reason` says why
  std::string reason;
};
// TF32 off, cuDNN's heuristic convolution algorithms, deterministic ones only (the same bits on
// every run).
GpuForTests make_gpu_backend_for_tests();
GpuForTests make_gpu_backend_for_tests(const GpuOptions& options);
// Those options, for a test that changes one of them.
GpuOptions gpu_options_for_tests();

// Bytes the current device's default memory pool (the CUDA backend's) holds from the driver;
// throws where there is no CUDA build or it cannot be read.
uint64_t device_pool_reserved_bytes();

// backend.run_probes, finished at once: a deferred run is collected and its results and halt flag
// put where a backend that does not defer would have put them (options.probe_input's results in
// its record).
ProbeRunEffects run_probes_now(Backend& backend, const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                               const ProbeRunOptions& options);

}  // namespace hookrt::testing

// In a test body or SetUp: `HOOKRT_GPU_OR_SKIP(gpu);` declares `gpu`, a std::unique_ptr<Backend>
// on the GPU, or skips the test saying why there is none.
#define HOOKRT_GPU_OR_SKIP(name)                                                  \
  auto name##_for_tests = ::hookrt::testing::make_gpu_backend_for_tests();        \
  if (!name##_for_tests.backend) GTEST_SKIP() << name##_for_tests.reason;         \
  std::unique_ptr<::hookrt::Backend> name = std::move(name##_for_tests.backend)
