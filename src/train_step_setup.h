#pragma once
// What the train-step benchmarks (benchmarks/ and `hookrt bench`) share: a ResNet18 with or
// without the benchmark's probes, the executor options, and a seeded batch with labels.
#include <cstdint>

#include "hookrt/executor.h"
#include "hookrt/hook_spec.h"
#include "hookrt/model.h"
#include "random.h"

namespace hookrt::bench {

// stats+zeros+nonfinite on every module's forward output and backward gradients and on every
// parameter gradient: 288 records per step.
inline void add_benchmark_probes(Model& model) {
  for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite",
                           "grad:*:stats,zeros,nonfinite"})
    register_hook_spec(model, parse_hook_spec(spec));
}

// Train mode, SGD with lr 0.01 and momentum 0.9.
inline ExecutorOptions train_options() {
  ExecutorOptions options;
  options.mode = Mode::Train;
  options.sgd.lr = 0.01;
  options.sgd.momentum = 0.9;
  return options;
}

// (n, 3, size, size) N(0, 1) values, seed 1.
inline Tensor random_batch(int64_t n, int64_t size) {
  Tensor x = Tensor::empty({n, 3, size, size});
  Pcg32 rng(1);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.normal());
  return x;
}

// Labels 0, 1, ... modulo 1000.
inline Tensor batch_labels(int64_t n) {
  Tensor labels = Tensor::zeros({n}, DType::I64);
  for (int64_t i = 0; i < n; ++i) labels.data<int64_t>()[i] = i % 1000;
  return labels;
}

}  // namespace hookrt::bench
