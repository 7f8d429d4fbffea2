// ResNet18 train step on the CUDA backend (batch 256, 3x224x224 by default, TF32 allowed as in
// PyTorch), without hooks and with stats+zeros+nonfinite on every module's forward output and
// backward gradients and on every parameter gradient; in F32 and in BF16 (Precision::BF16,
// torch.autocast's bfloat16: F32 master weights), the same batch and probes. The batch lives on
// the GPU, as a data loader's would, so the figures are the step's own. Compare with
// benchmarks/torch_gpu_baseline.py on the same card, in the same run (scripts/device-check);
// benchmarks/device_figures.py holds each hooked step to the unhooked step of its precision, and
// the BF16 step to the F32 one.
#include <benchmark/benchmark.h>

#include <exception>
#include <memory>

#include "cuda_entry.h"
#include "train_step_setup.h"

namespace {

// One warmed executor, kept across Google Benchmark's calls of the same benchmark (it calls each
// several times while it settles its iteration count): building the model, the backend and the
// executor and warming them up (cuDNN's algorithm search, the memory pool, the step's recording)
// takes seconds each time. One at a time, so that two batch-256 steps never hold memory together.
struct WarmStep {
  bool hooked = false;
  hookrt::Precision precision = hookrt::Precision::F32;
  int64_t batch = 0, size = 0;
  hookrt::Model model = hookrt::Model::resnet18(1000, 0);
  hookrt::Tensor x, labels;
  int64_t records = 0;
  std::unique_ptr<hookrt::Executor> executor;

  bool serves(bool h, hookrt::Precision p, int64_t b, int64_t s) const {
    return hooked == h && precision == p && batch == b && size == s;
  }
};

std::unique_ptr<WarmStep>& current_step() {
  static std::unique_ptr<WarmStep> step;
  return step;
}

// The warmed step for these settings, made (and the one before dropped) where it is not the one
// kept; nullptr, with the state skipped, where this build has no CUDA backend.
WarmStep* warm_step(benchmark::State& state, bool hooked, hookrt::Precision precision) {
  const int64_t batch = state.range(0), size = state.range(1);
  std::unique_ptr<WarmStep>& kept = current_step();
  if (kept && kept->serves(hooked, precision, batch, size)) return kept.get();
  kept.reset();
  auto step = std::make_unique<WarmStep>();
  step->hooked = hooked, step->precision = precision, step->batch = batch, step->size = size;
  if (hooked) hookrt::bench::add_benchmark_probes(step->model);
  std::unique_ptr<hookrt::Backend> backend = hookrt::cuda::make_backend();
  if (!backend) {
    state.SkipWithError("this build has no CUDA backend");
    return nullptr;
  }
  step->x = backend->from_host(hookrt::bench::random_batch(batch, size));
  step->labels = hookrt::bench::batch_labels(batch);
  hookrt::ExecutorOptions options = hookrt::bench::train_options();
  options.precision = precision;
  step->executor = std::make_unique<hookrt::Executor>(step->model, std::move(backend), options);
  step->executor->subscribe([records = &step->records](const hookrt::ProbeRecord&) { ++*records; });
  // Warm-up: cuDNN algorithm choice, the memory pool's first allocations, the step's recording.
  for (int i = 0; i < 3; ++i) step->executor->step(step->x, step->labels);
  step->executor->flush_records();
  kept = std::move(step);
  return kept.get();
}

void train_step(benchmark::State& state, bool hooked, hookrt::Precision precision) {
  // A failed step is this benchmark's error, not the program's end: the others still run and the
  // results file stays whole (Google Benchmark does not catch exceptions).
  try {
    WarmStep* step = warm_step(state, hooked, precision);
    if (!step) return;
    step->records = 0;
    // step() returns the logits on the host, so each iteration ends with the GPU's work done.
    // Probe records reach the subscriber on the executor's delivery thread, beside the next step.
    for (auto _ : state) step->executor->step(step->x, step->labels);
    step->executor->flush_records();
    state.counters["images/s"] = benchmark::Counter(static_cast<double>(step->batch * state.iterations()),
                                                    benchmark::Counter::kIsRate);
    state.counters["records/step"] = static_cast<double>(step->records) / static_cast<double>(state.iterations());
  } catch (const std::exception& e) {
    current_step().reset();
    state.SkipWithError(e.what());
  }
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
