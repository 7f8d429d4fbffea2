// ResNet18 train step on the CUDA backend (batch 256, 3x224x224 by default, TF32 allowed as in
// PyTorch), without hooks and with stats+zeros+nonfinite on every module's forward output and
// backward gradients and on every parameter gradient; in F32 and in BF16 (Precision::BF16,
// torch.autocast's bfloat16: F32 master weights), the same batch and probes. The batch lives on
// the GPU, as a data loader's would, so the figures are the step's own. Compare with
// benchmarks/torch_gpu_baseline.py on the same card, in the same run (scripts/device-check);
// benchmarks/device_figures.py holds each hooked step to the unhooked step of its precision, and
// the BF16 step to the F32 one.
#include <benchmark/benchmark.h>

#include <memory>

#include "cuda_entry.h"
#include "train_step_setup.h"

namespace {

void train_step(benchmark::State& state, bool hooked, hookrt::Precision precision) {
  const int64_t batch = state.range(0), size = state.range(1);
  hookrt::Model model = hookrt::Model::resnet18(1000, 0);
  if (hooked) hookrt::bench::add_benchmark_probes(model);
  std::unique_ptr<hookrt::Backend> backend = hookrt::cuda::make_backend();
  if (!backend) {
    state.SkipWithError("this build has no CUDA backend");
    return;
  }
  const hookrt::Tensor x = backend->from_host(hookrt::bench::random_batch(batch, size));
  hookrt::ExecutorOptions options = hookrt::bench::train_options();
  options.precision = precision;
  hookrt::Executor executor(model, std::move(backend), options);
  int64_t records = 0;
  executor.subscribe([&records](const hookrt::ProbeRecord&) { ++records; });
  const hookrt::Tensor labels = hookrt::bench::batch_labels(batch);
  // Warm-up: cuDNN algorithm choice, the memory pool's first allocations.
  for (int i = 0; i < 3; ++i) executor.step(x, labels);
  executor.flush_records();
  records = 0;
  // step() returns the logits on the host, so each iteration ends with the GPU's work done.
  // Probe records reach the subscriber on the executor's delivery thread, beside the next step.
  for (auto _ : state) executor.step(x, labels);
  executor.flush_records();
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["records/step"] = static_cast<double>(records) / static_cast<double>(state.iterations());
}

void BM_GpuTrainStep(benchmark::State& state) { train_step(state, false, hookrt::Precision::F32); }
void BM_GpuTrainStepHooked(benchmark::State& state) { train_step(state, true, hookrt::Precision::F32); }
void BM_GpuTrainStepBf16(benchmark::State& state) { train_step(state, false, hookrt::Precision::BF16); }
void BM_GpuTrainStepBf16Hooked(benchmark::State& state) { train_step(state, true, hookrt::Precision::BF16); }

BENCHMARK(BM_GpuTrainStep)->Args({256, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_GpuTrainStepHooked)->Args({256, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_GpuTrainStepBf16)->Args({256, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_GpuTrainStepBf16Hooked)->Args({256, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
