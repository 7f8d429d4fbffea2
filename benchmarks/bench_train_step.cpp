// ResNet18 train step on the CPU backend (batch 8, 3x224x224 by default), without hooks and with
// stats+zeros+nonfinite on every module's forward output and backward gradients and on every
// parameter gradient. Compare with benchmarks/torch_cpu_baseline.py on the same machine.
#include <benchmark/benchmark.h>

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
  hookrt::Executor executor(model, hookrt::make_cpu_backend(), options);
  int64_t records = 0;
  executor.subscribe([&records](const hookrt::ProbeRecord&) { ++records; });
  const hookrt::Tensor x = random_batch(batch, size);
  hookrt::Tensor labels = hookrt::Tensor::zeros({batch}, hookrt::DType::I64);
  for (int64_t i = 0; i < batch; ++i) labels.data<int64_t>()[i] = i % 1000;
  executor.step(x, labels);  // warm-up: first-touch allocation, BLAS thread start
  for (auto _ : state) executor.step(x, labels);
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["records/step"] = static_cast<double>(records) / static_cast<double>(state.iterations() + 1);
}

void BM_TrainStep(benchmark::State& state) { train_step(state, false); }
void BM_TrainStepHooked(benchmark::State& state) { train_step(state, true); }

BENCHMARK(BM_TrainStep)->Args({8, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_TrainStepHooked)->Args({8, 224})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);

}  // namespace

BENCHMARK_MAIN();
