// The probe pass against a device-to-device copy of the same tensor, in the same run: stats +
// zeros + nonfinite on one F32 tensor (one read of it) through the CUDA backend's run_probes, and
// cudaMemcpyAsync of the tensor (one read and one write). Both are timed with CUDA events around
// the queued work. Target (issue 3): the probe pass's read bandwidth >= 90% of the copy's
// read+write bandwidth. Sizes 1 MB to 1 GB, shaped as activations (N, 64, 32, 32) so that zeros
// counts dead channels over 64 channels as it does in a network; the data is random normal (never
// zeros: they would hide work the kernels skip).
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>

#include "cuda_backend.h"
#include "cuda_entry.h"
#include "hookrt/backend.h"
#include "random.h"

namespace {

// Random normal values, made on the host once per size (tiled from 16M values beyond that).
hookrt::Tensor random_device_tensor(hookrt::Backend& gpu, const hookrt::Shape& shape) {
  const int64_t n = hookrt::shape_numel(shape);
  const int64_t tile = std::min<int64_t>(n, int64_t{1} << 24);
  hookrt::Tensor host = hookrt::Tensor::empty({tile});
  hookrt::Pcg32 rng(7);
  for (int64_t i = 0; i < tile; ++i) host.data<float>()[i] = static_cast<float>(rng.normal());
  const hookrt::Tensor source = gpu.from_host(host);
  hookrt::Tensor t = gpu.empty(shape);
  for (int64_t done = 0; done < n; done += tile) {
    const int64_t count = std::min(tile, n - done);
    if (cudaMemcpy(t.data<float>() + done, source.data<float>(), count * sizeof(float), cudaMemcpyDeviceToDevice) !=
        cudaSuccess)
      throw hookrt::Error("bench_gpu_probes: filling the tensor failed");
  }
  return t;
}

struct EventTimer {
  cudaEvent_t start{}, stop{};
  EventTimer() {
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
  }
  ~EventTimer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  double seconds() {
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    return ms / 1e3;
  }
};

std::unique_ptr<hookrt::Backend> gpu_or_skip(benchmark::State& state) {
  auto gpu = hookrt::cuda::make_backend();
  if (!gpu) state.SkipWithError("this build has no CUDA backend");
  return gpu;
}

// The backend's own stream: events recorded there bracket exactly the work it queues.
cudaStream_t stream_of(hookrt::Backend& gpu) { return static_cast<hookrt::cuda::CudaBackend&>(gpu).stream(); }

// range(0) MiB as (N, 64, 32, 32): one sample is 256 KiB.
hookrt::Shape activation_shape(const benchmark::State& state) { return {state.range(0) * 4, 64, 32, 32}; }

void BM_ProbePass(benchmark::State& state) {
  auto gpu = gpu_or_skip(state);
  if (!gpu) return;
  hookrt::Tensor t = random_device_tensor(*gpu, activation_shape(state));
  const hookrt::ProbeList probes{hookrt::probes::Stats{}, hookrt::probes::Zeros{}, hookrt::probes::NonFinite{}};
  hookrt::ProbeRunOptions options;
  gpu->synchronize();
  EventTimer timer;
  for (auto _ : state) {
    hookrt::ProbeRecord record;
    cudaEventRecord(timer.start, stream_of(*gpu));
    gpu->run_probes(probes, t, record, options);
    cudaEventRecord(timer.stop, stream_of(*gpu));
    gpu->collect_deferred_probe_results();  // the step's one copy of the results arena, not timed
    state.SetIterationTime(timer.seconds());
  }
  state.counters["read_GB/s"] = benchmark::Counter(static_cast<double>(t.nbytes()) * state.iterations(),
                                                   benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void BM_DeviceCopy(benchmark::State& state) {
  auto gpu = gpu_or_skip(state);
  if (!gpu) return;
  const hookrt::Tensor src = random_device_tensor(*gpu, activation_shape(state));
  hookrt::Tensor dst = gpu->empty(src.shape());
  gpu->synchronize();
  EventTimer timer;
  for (auto _ : state) {
    cudaEventRecord(timer.start, stream_of(*gpu));
    cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(), cudaMemcpyDeviceToDevice, stream_of(*gpu));
    cudaEventRecord(timer.stop, stream_of(*gpu));
    state.SetIterationTime(timer.seconds());
  }
  state.counters["read+write_GB/s"] = benchmark::Counter(2.0 * static_cast<double>(src.nbytes()) * state.iterations(),
                                                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// 1 MiB to 1 GiB by factors of 4.
void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t mib = 1; mib <= 1024; mib *= 4) b->Arg(mib);
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.3);
}

BENCHMARK(BM_ProbePass)->Apply(sizes);
BENCHMARK(BM_DeviceCopy)->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
