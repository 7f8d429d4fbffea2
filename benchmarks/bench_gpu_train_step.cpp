// ResNet18 train step on the CUDA backend (batch 256, 3x224x224 by default, TF32 allowed as in
// PyTorch), without hooks and with stats+zeros+nonfinite on every module's forward output and
// backward gradients and on every parameter gradient. The batch lives on the GPU, as a data
// loader's would, so the figures are the step's own. Compare with benchmarks/torch_gpu_baseline.py
// on the same card, in the same run (scripts/device-check).
#include <benchmark/benchmark.h>

#include <memory>

#include "cuda_entry.h"
#include "hookrt/executor.h"
#include "hookrt/hook_spec.h"
#include "random.h"

namespace {

hookrt::Tensor random_batch(int64_t n, int64_t size) {
  hookrt::Tensor x = hookrt::Tensor::empty({n, 3, size, size});
  hookrt::Pcg32 rng(1);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.normal());
  return x;
}

void train_step(benchmark::State& state, bool hooked) {
  const int64_t batch = state.range(0), size = state.range(1);
  hookrt::Model model = hookrt::Model::resnet18(1000, 0);
  if (hooked) {
    for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite",
                             "grad:*:stats,zeros,nonfinite"})
      hookrt::register_hook_spec(model, hookrt::parse_hook_spec(spec));
  }
  hookrt::ExecutorOptions options;
  options.mode = hookrt::Mode::Train;
  options.sgd.lr = 0.01;
  options.sgd.momentum = 0.9;
  std::unique_ptr<hookrt::Backend> backend = hookrt::cuda::make_backend();
  if (!backend) {
    state.SkipWithError("this build has no CUDA backend");
    return;
  }
  const hookrt::Tensor x = backend->from_host(random_batch(batch, size));
  hookrt::Executor executor(model, std::move(backend), options);
  int64_t records = 0;
  executor.subscribe([&records](const hookrt::ProbeRecord&) { ++records; });
  hookrt::Tensor labels = hookrt::Tensor::zeros({batch}, hookrt::DType::I64);
  for (int64_t i = 0; i < batch; ++i) labels.data<int64_t>()[i] = i % 1000;
  // Warm-up: cuDNN algorithm choice, the memory pool's first allocations.
  for (int i = 0; i < 3; ++i) executor.step(x, labels);
  records = 0;
  // step() returns the logits on the host, so each iteration ends with the GPU's work done.
  for (auto _ : state) executor.step(x, labels);
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["records/step"] = static_cast<double>(records) / static_cast<double>(state.iterations());
}

void BM_GpuTrainStep(benchmark::State& state) { train_step(state, false); }
void BM_GpuTrainStepHooked(benchmark::State& state) { train_step(state, true); }

BENCHMARK(BM_GpuTrainStep)->Args({256, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_GpuTrainStepHooked)->Args({256, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
