// The probe pass against a device-to-device copy of the same tensor, in the same run: stats +
// zeros + nonfinite on one F32 tensor, or one BF16 tensor of as many bytes (one read of it) through the CUDA backend's run_probes, and
// cudaMemcpyAsync of the tensor (one read and one write). Target (issue 3): the probe pass's read
// bandwidth >= 90% of the copy's read+write bandwidth.
//
// Both are timed as a step runs them by default: recorded once into a CUDA graph and replayed,
// several replays back to back between two CUDA events, so that what is timed is the device's
// work and not the host's queuing of it. BM_ProbePassEager times one run_probes call between
// events instead, as an eager step (one with a host callback) queues it: the host's work in the
// call then counts too, where the device waits for it. Sizes 1 MB to 1 GB, shaped as activations (N, 64, 32, 32) so that zeros
// counts dead channels over 64 channels as it does in a network; the data is random normal (never
// zeros: they would hide work the kernels skip).
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda_backend.h"
#include "cuda_entry.h"
#include "hookrt/backend.h"
#include "random.h"

namespace {

// Random normal values of `dtype` (F32 or BF16), made on the host once per size (tiled from 16M
// values beyond that).
hookrt::Tensor random_device_tensor(hookrt::Backend& gpu, const hookrt::Shape& shape,
                                    hookrt::DType dtype = hookrt::DType::F32) {
  const int64_t n = hookrt::shape_numel(shape);
  const int64_t tile = std::min<int64_t>(n, int64_t{1} << 24);
  hookrt::Tensor host = hookrt::Tensor::empty({tile});
  hookrt::Pcg32 rng(7);
  for (int64_t i = 0; i < tile; ++i) host.data<float>()[i] = static_cast<float>(rng.normal());
  const hookrt::Tensor source = gpu.from_host(host.to(dtype));
  hookrt::Tensor t = gpu.empty(shape, dtype);
  const size_t element = hookrt::dtype_size(dtype);
  for (int64_t done = 0; done < n; done += tile) {
    const int64_t count = std::min(tile, n - done);
    if (cudaMemcpy(static_cast<char*>(t.raw_data()) + done * element, source.raw_data(), count * element,
                   cudaMemcpyDeviceToDevice) != cudaSuccess)
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

// One backend for the whole run, and its random tensors by (MiB, index). Google Benchmark calls a
// benchmark's function several times while it settles on an iteration count, and a new backend and
// new random tensors each time took longer than the timings did (97 of the device check's seconds).
// The tensors go before the backend (members are destroyed in reverse order).
// Where there is no backend, `why_none` says why, and every benchmark skips saying so.
struct SharedDevice {
  SharedDevice() {
    try {
      gpu = hookrt::cuda::make_backend();
      if (!gpu) why_none = "this build has no CUDA backend";
    } catch (const std::exception& error) {
      why_none = error.what();
    }
  }
  std::unique_ptr<hookrt::Backend> gpu;
  std::string why_none;
  std::map<std::pair<int64_t, int>, hookrt::Tensor> tensors;
  std::map<int64_t, hookrt::Tensor> bf16_tensors;  // by MiB
};

SharedDevice& shared_device() {
  static SharedDevice device;
  return device;
}

hookrt::Backend* gpu_or_skip(benchmark::State& state) {
  SharedDevice& device = shared_device();
  if (!device.gpu) state.SkipWithError(device.why_none.c_str());
  return device.gpu.get();
}

// range(0) MiB as (N, 64, 32, 32): one sample is 256 KiB.
hookrt::Shape activation_shape(const benchmark::State& state) { return {state.range(0) * 4, 64, 32, 32}; }

// The index-th random tensor of range(0) MiB, made once per run.
hookrt::Tensor cached_tensor(hookrt::Backend& gpu, const benchmark::State& state, int index = 0) {
  hookrt::Tensor& t = shared_device().tensors[{state.range(0), index}];
  if (!t.defined()) t = random_device_tensor(gpu, activation_shape(state));
  return t;
}

// A random BF16 tensor of range(0) MiB, as (N, 64, 32, 32) with twice the samples of the F32 one.
hookrt::Tensor cached_bf16_tensor(hookrt::Backend& gpu, const benchmark::State& state) {
  hookrt::Tensor& t = shared_device().bf16_tensors[state.range(0)];
  if (!t.defined()) t = random_device_tensor(gpu, {state.range(0) * 8, 64, 32, 32}, hookrt::DType::BF16);
  return t;
}

// The backend's own stream: events recorded there bracket exactly the work it queues.
cudaStream_t stream_of(hookrt::Backend& gpu) { return static_cast<hookrt::cuda::CudaBackend&>(gpu).stream(); }

// Replays per timing: at least 256 MiB of reads, so that a launch's fixed cost is spread as in a
// step, where the next kernel is queued before the last one ends.
int replays_per_timing(const benchmark::State& state) {
  return static_cast<int>(std::max<int64_t>(1, 256 / state.range(0)));
}

// The work `queue` puts on the stream, recorded once as a CUDA graph.
class RecordedWork {
 public:
  template <class Queue>
  RecordedWork(cudaStream_t stream, Queue&& queue) : stream_(stream) {
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      queue();
    } catch (...) {  // leave the stream capturing nothing, for the benchmarks after this one
      cudaGraph_t dropped = nullptr;
      if (cudaStreamEndCapture(stream, &dropped) == cudaSuccess && dropped) cudaGraphDestroy(dropped);
      throw;
    }
    check(cudaStreamEndCapture(stream, &graph_), "cudaStreamEndCapture");
    check(cudaGraphInstantiate(&exec_, graph_, 0), "cudaGraphInstantiate");
  }
  RecordedWork(const RecordedWork&) = delete;
  RecordedWork& operator=(const RecordedWork&) = delete;
  ~RecordedWork() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
  }
  void replay() { check(cudaGraphLaunch(exec_, stream_), "cudaGraphLaunch"); }

 private:
  static void check(cudaError_t status, const char* call) {
    if (status != cudaSuccess) throw hookrt::Error(std::string("bench_gpu_probes: ") + call + ": " + cudaGetErrorString(status));
  }
  cudaStream_t stream_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// Times `replays` replays of `work` back to back per iteration. An iteration's time is that of all
// its replays, not of one: Google Benchmark runs iterations until their times add up to min_time,
// and per-replay times would make it run `replays` times as long as asked. The byte rates count
// every replay (see replayed_bytes_per_second); the counter `replays` says how many an iteration has.
void time_replays(benchmark::State& state, cudaStream_t stream, RecordedWork& work, int replays) {
  EventTimer timer;
  for (auto _ : state) {
    cudaEventRecord(timer.start, stream);
    for (int r = 0; r < replays; ++r) work.replay();
    cudaEventRecord(timer.stop, stream);
    state.SetIterationTime(timer.seconds());
  }
  state.counters["replays"] = replays;
}

// Runs a benchmark's body: a failed CUDA call (an Error) skips this size, and the rest run.
template <class Body>
void run_or_skip(benchmark::State& state, Body body) {
  try {
    body();
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}

// `bytes` moved per iteration, as a rate in bytes per second.
benchmark::Counter bytes_per_second(double bytes, const benchmark::State& state) {
  return benchmark::Counter(bytes * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate,
                            benchmark::Counter::kIs1000);
}

// `bytes` moved per replay, `replays` replays per iteration, as a rate in bytes per second.
benchmark::Counter replayed_bytes_per_second(double bytes, int replays, const benchmark::State& state) {
  return bytes_per_second(bytes * replays, state);
}

// The backend and an activation-shaped random tensor on it; no backend where this build has none
// (the size is then skipped).
struct BenchTensor {
  hookrt::Backend* gpu;
  hookrt::Tensor t;
};

BenchTensor bench_tensor(benchmark::State& state) {
  BenchTensor bench{gpu_or_skip(state), {}};
  if (bench.gpu) bench.t = cached_tensor(*bench.gpu, state);
  return bench;
}

const hookrt::ProbeList& common_probes() {
  static const hookrt::ProbeList probes{hookrt::probes::Stats{}, hookrt::probes::Zeros{}, hookrt::probes::NonFinite{}};
  return probes;
}

// The probe pass over the tensor, replayed from a graph as a step runs it.
void time_probe_pass(benchmark::State& state, hookrt::Backend* gpu, hookrt::Tensor& t) {
  const hookrt::ProbeRunOptions options;
  hookrt::ProbeRecord warm_up;  // the arena, the pool and the kernels' first use, outside the graph
  gpu->run_probes(common_probes(), t, warm_up, options);
  gpu->collect_deferred_probe_results();
  hookrt::ProbeRecord record;
  RecordedWork pass(stream_of(*gpu), [&] {
    gpu->run_probes(common_probes(), t, record, options);
    stream_of(*gpu);  // launches the run, which waits to share its launch with the next ones
  });
  const int replays = replays_per_timing(state);
  time_replays(state, stream_of(*gpu), pass, replays);
  gpu->collect_deferred_probe_results();  // the results of the last replay
  state.counters["read_GB/s"] = replayed_bytes_per_second(static_cast<double>(t.nbytes()), replays, state);
}

void BM_ProbePass(benchmark::State& state) {
  run_or_skip(state, [&] {
    auto [gpu, t] = bench_tensor(state);
    if (gpu) time_probe_pass(state, gpu, t);
  });
}

// The same bytes as BF16 values: twice the elements, read with half as many bytes to a load.
void BM_ProbePassBf16(benchmark::State& state) {
  run_or_skip(state, [&] {
    hookrt::Backend* gpu = gpu_or_skip(state);
    if (!gpu) return;
    hookrt::Tensor t = cached_bf16_tensor(*gpu, state);
    time_probe_pass(state, gpu, t);
  });
}

void BM_ProbePassEager(benchmark::State& state) {
  run_or_skip(state, [&] {
    auto [gpu, t] = bench_tensor(state);
    if (!gpu) return;
    const hookrt::ProbeRunOptions options;
    gpu->synchronize();
    EventTimer timer;
    for (auto _ : state) {
      hookrt::ProbeRecord record;
      cudaEventRecord(timer.start, stream_of(*gpu));
      gpu->run_probes(common_probes(), t, record, options);
      cudaEventRecord(timer.stop, stream_of(*gpu));
      gpu->collect_deferred_probe_results();  // the step's one copy of the results arena, not timed
      state.SetIterationTime(timer.seconds());
    }
    state.counters["read_GB/s"] = bytes_per_second(static_cast<double>(t.nbytes()), state);
  });
}

// Six runs of the common probes on six tensors of range(0) MiB, replayed: queued back to back, as a
// step queues the runs that share a launch (one kernel: BM_ProbeBatch), or each launched before
// the next is queued (six kernels: BM_ProbeRunsApart). What one costs over the other is the fixed
// cost of a launch, at sizes where it matters.
constexpr int kBatchedRuns = 6;

void probe_six(benchmark::State& state, bool apart) {
  run_or_skip(state, [&] {
    auto gpu = gpu_or_skip(state);
    if (!gpu) return;
    std::vector<hookrt::Tensor> tensors;
    for (int i = 0; i < kBatchedRuns; ++i) tensors.push_back(cached_tensor(*gpu, state, i));
    const hookrt::ProbeRunOptions options;
    std::vector<hookrt::ProbeRecord> records(kBatchedRuns);
    auto queue = [&](bool each_apart) {
      for (int i = 0; i < kBatchedRuns; ++i) {
        gpu->run_probes(common_probes(), tensors[i], records[i], options);
        if (each_apart) stream_of(*gpu);  // launches the run now
      }
      stream_of(*gpu);
    };
    queue(false);  // the scratch and counters a batch needs, and the kernels' first use, outside the graph
    queue(true);
    gpu->collect_deferred_probe_results();
    RecordedWork runs(stream_of(*gpu), [&] { queue(apart); });
    const int replays = static_cast<int>(std::max<int64_t>(1, 256 / (kBatchedRuns * state.range(0))));
    time_replays(state, stream_of(*gpu), runs, replays);
    gpu->collect_deferred_probe_results();  // the results of the last replay
    state.counters["read_GB/s"] =
        replayed_bytes_per_second(kBatchedRuns * static_cast<double>(tensors.front().nbytes()), replays, state);
  });
}

void BM_ProbeBatch(benchmark::State& state) { probe_six(state, false); }
void BM_ProbeRunsApart(benchmark::State& state) { probe_six(state, true); }

void BM_DeviceCopy(benchmark::State& state) {
  run_or_skip(state, [&] {
    auto [gpu, src] = bench_tensor(state);
    if (!gpu) return;
    hookrt::Tensor dst = gpu->empty(src.shape());
    gpu->synchronize();
    cudaStream_t stream = stream_of(*gpu);
    RecordedWork copy(stream, [&] {
      cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(), cudaMemcpyDeviceToDevice, stream);
    });
    const int replays = replays_per_timing(state);
    time_replays(state, stream, copy, replays);
    state.counters["read+write_GB/s"] = replayed_bytes_per_second(2.0 * static_cast<double>(src.nbytes()), replays, state);
  });
}

// 1 MiB to 1 GiB by factors of 4.
void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t mib = 1; mib <= 1024; mib *= 4) b->Arg(mib);
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.3);
}

BENCHMARK(BM_ProbePass)->Apply(sizes);
BENCHMARK(BM_ProbePassBf16)->Arg(64)->Arg(256)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.3);
// Eager: the fixed cost of a call shows at 1 MiB, and 64 MiB is the smallest size the target holds.
BENCHMARK(BM_ProbePassEager)->Arg(1)->Arg(64)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.3);
BENCHMARK(BM_DeviceCopy)->Apply(sizes);
BENCHMARK(BM_ProbeBatch)->Arg(1)->Arg(16)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.3);
BENCHMARK(BM_ProbeRunsApart)->Arg(1)->Arg(16)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.3);

}  // namespace

// BENCHMARK_MAIN's steps, with the shared backend and its tensors released before main returns,
// while the CUDA runtime is still up (a static's destructor would run after its teardown).
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  SharedDevice& device = shared_device();
  device.tensors.clear();
  device.bf16_tensors.clear();
  device.gpu.reset();
  benchmark::Shutdown();
  return 0;
}
