// ResNet18 train step on the CPU backend (batch 8, 3x224x224 by default), without hooks and with
// stats+zeros+nonfinite on every module's forward output and backward gradients and on every
// parameter gradient. Compare with benchmarks/torch_cpu_baseline.py on the same machine.
#include <benchmark/benchmark.h>

#include "train_step_setup.h"

namespace {

void train_step(benchmark::State& state, bool hooked) {
  const int64_t batch = state.range(0), size = state.range(1);
  hookrt::Model model = hookrt::Model::resnet18(1000, 0);
  if (hooked) hookrt::bench::add_benchmark_probes(model);
  hookrt::Executor executor(model, hookrt::make_cpu_backend(), hookrt::bench::train_options());
  int64_t records = 0;
  executor.subscribe([&records](const hookrt::ProbeRecord&) { ++records; });
  const hookrt::Tensor x = hookrt::bench::random_batch(batch, size);
  const hookrt::Tensor labels = hookrt::bench::batch_labels(batch);
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
