// The CPU convolution (im2col + OpenBLAS GEMM) at every distinct ResNet18 layer shape, batch 8,
// 224x224 input: forward, backward data and backward filter, through the production ops of
// src/cpu/ops.h. GFLOP/s counts 2·N·K·C·R·S·P·Q per pass. A ResNet18 step runs each shape the
// number of times in `uses`; the torch_cpu_baseline script gives the whole-step comparison.
#include <benchmark/benchmark.h>

#include <string>
#include <utility>
#include <vector>

#include "cpu/ops.h"
#include "random.h"

namespace {

using hookrt::cpu::ConvShape;

struct LayerShape {
  const char* name;
  ConvShape shape;
  int uses;  // times per ResNet18 forward
};

constexpr int64_t kBatch = 8;

const std::vector<LayerShape> kLayers = {
    {"conv1_7x7s2", {kBatch, 3, 224, 224, 64, 7, 7, 2, 3}, 1},
    {"layer1_3x3", {kBatch, 64, 56, 56, 64, 3, 3, 1, 1}, 4},
    {"layer2.0.conv1_3x3s2", {kBatch, 64, 56, 56, 128, 3, 3, 2, 1}, 1},
    {"layer2_3x3", {kBatch, 128, 28, 28, 128, 3, 3, 1, 1}, 3},
    {"layer2.0.downsample_1x1s2", {kBatch, 64, 56, 56, 128, 1, 1, 2, 0}, 1},
    {"layer3.0.conv1_3x3s2", {kBatch, 128, 28, 28, 256, 3, 3, 2, 1}, 1},
    {"layer3_3x3", {kBatch, 256, 14, 14, 256, 3, 3, 1, 1}, 3},
    {"layer3.0.downsample_1x1s2", {kBatch, 128, 28, 28, 256, 1, 1, 2, 0}, 1},
    {"layer4.0.conv1_3x3s2", {kBatch, 256, 14, 14, 512, 3, 3, 2, 1}, 1},
    {"layer4_3x3", {kBatch, 512, 7, 7, 512, 3, 3, 1, 1}, 3},
    {"layer4.0.downsample_1x1s2", {kBatch, 256, 14, 14, 512, 1, 1, 2, 0}, 1},
};

std::vector<float> random_values(int64_t count, uint64_t seed) {
  hookrt::Pcg32 rng(seed);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  return values;
}

enum class Pass { Forward, BackwardData, BackwardFilter };

void conv_pass(benchmark::State& state, const LayerShape layer, Pass pass) {
  const ConvShape& s = layer.shape;
  const std::vector<float> x = random_values(s.n * s.c * s.h * s.w, 1), w = random_values(s.k * s.c * s.r * s.s, 2);
  const std::vector<float> dy = random_values(s.n * s.k * s.p() * s.q(), 3);
  std::vector<float> y(dy.size()), dx(x.size()), dw(w.size());
  const auto run = [&] {
    switch (pass) {
      case Pass::Forward: hookrt::cpu::conv2d_forward(x.data(), w.data(), y.data(), s); break;
      case Pass::BackwardData: hookrt::cpu::conv2d_backward_data(dy.data(), w.data(), dx.data(), s); break;
      case Pass::BackwardFilter: hookrt::cpu::conv2d_backward_filter(x.data(), dy.data(), dw.data(), s); break;
    }
  };
  run();  // warm-up: scratch buffers, BLAS threads
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(s.n * s.k * s.c * s.r * s.s * s.p() * s.q());
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["uses/step"] = layer.uses;
}

// One benchmark per (layer, pass), named e.g. conv2d_forward/layer1_3x3.
const bool kRegistered = [] {
  const std::pair<const char*, Pass> passes[] = {
      {"conv2d_forward", Pass::Forward},
      {"conv2d_backward_data", Pass::BackwardData},
      {"conv2d_backward_filter", Pass::BackwardFilter}};
  for (const auto& [pass_name, pass] : passes)
    for (const LayerShape& layer : kLayers)
      benchmark::RegisterBenchmark((std::string(pass_name) + "/" + layer.name).c_str(), conv_pass, layer, pass)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
