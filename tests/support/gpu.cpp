#include "support/gpu.h"

#if HOOKRT_WITH_CUDA
#include <cuda_runtime.h>
#endif

#include "cuda_entry.h"
#include "hookrt/devices.h"

namespace hookrt::testing {

GpuForTests make_gpu_backend_for_tests() { return make_gpu_backend_for_tests(gpu_options_for_tests()); }

GpuOptions gpu_options_for_tests() {
  GpuOptions options;
  options.allow_tf32 = false;  // the CPU reference computes full F32 products
  // The heuristic algorithms: the same on every run, so a failure reproduces
  // (test_gpu_conv_algorithms holds the measured ones to them).
  options.measure_conv_algorithms = false;
  // Deterministic algorithms: GPU tests compare GPU runs bit for bit, and trained steps amplify
  // any difference in the gradients' summation order.
  options.deterministic = true;
  return options;
}

GpuForTests make_gpu_backend_for_tests(const GpuOptions& options) {
  const GpuScan scan = scan_gpus();
  if (!scan.problem.empty()) return {nullptr, "GPU test skipped: " + scan.problem};
  return {cuda::make_backend(options), ""};
}

uint64_t device_pool_reserved_bytes() {
  uint64_t bytes = 0;
#if HOOKRT_WITH_CUDA
  int device = 0;
  cudaMemPool_t pool = nullptr;
  if (cudaGetDevice(&device) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess &&
      cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &bytes) == cudaSuccess)
    return bytes;
#endif
  throw Error("cannot read the device memory pool's reserved bytes");
}

ProbeRunEffects run_probes_now(Backend& backend, const ProbeList& probes, Tensor& tensor, ProbeRecord& record,
                               const ProbeRunOptions& options) {
  ProbeRunEffects effects = backend.run_probes(probes, tensor, record, options);
  if (!effects.deferred && !effects.input_deferred) return effects;
  std::vector<DeferredProbeResults> finished = backend.collect_deferred_probe_results();
  auto take = [&finished](std::optional<uint64_t>& ticket, ProbeRecord& into) {
    for (DeferredProbeResults& run : finished) {
      if (run.ticket != *ticket) continue;
      for (ProbeResult& result : run.results) into.results.push_back(std::move(result));
      ticket.reset();
      return run.halt;
    }
    throw Error("run_probes_now: the backend did not return deferred run " + std::to_string(*ticket));
  };
  if (effects.deferred) effects.halt = take(effects.deferred, record);
  if (effects.input_deferred) take(effects.input_deferred, *options.probe_input->record);
  return effects;
}

}  // namespace hookrt::testing
