// `hookrt bench`: the ResNet18 train step without hooks and with stats+zeros+nonfinite on every
// module's forward output and backward gradients and on every parameter gradient, timed on the
// chosen device, printed in the format of benchmarks/torch_gpu_baseline.py so that the two read
// side by side, and optionally written as JSON.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "hookrt/devices.h"
#include "hookrt/executor.h"
#include "train_step_setup.h"

namespace hookrt::cli {

namespace {

struct BenchArgs {
  std::string device = "auto", json;
  int64_t batch = 256, size = 224, steps = 10, warmup = 3;
  bool no_tf32 = false;
};

// Median wall time of `steps` steps after `warmup`; each step ends by reading its loss, so its
// time covers the device's work.
double median_step_ms(const BenchArgs& a, bool hooked) {
  Model model = Model::resnet18(1000);
  if (hooked) bench::add_benchmark_probes(model);
  GpuOptions gpu;
  gpu.allow_tf32 = !a.no_tf32;
  Executor executor(model, select_backend(parse_device_choice(a.device), gpu).backend, bench::train_options());
  const Tensor x = bench::random_batch(a.batch, a.size), y = bench::batch_labels(a.batch);
  std::vector<double> times;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    const auto begin = std::chrono::steady_clock::now();
    executor.step(x, y);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    if (i >= a.warmup) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

void print_line(const std::string& name, double ms, int64_t batch) {
  std::printf("hookrt %-14s %8.2f ms/step  %8.0f images/s\n", name.c_str(), ms, static_cast<double>(batch) / ms * 1e3);
  std::fflush(stdout);
}

int bench_main(const BenchArgs& a) {
  const std::string backend = select_backend(parse_device_choice(a.device), {}).backend->name();
  std::printf("hookrt %s, batch %lld, %lldx%lld, %lld steps after %lld warmup\n", backend.c_str(),
              static_cast<long long>(a.batch), static_cast<long long>(a.size), static_cast<long long>(a.size),
              static_cast<long long>(a.steps), static_cast<long long>(a.warmup));
  const double unhooked = median_step_ms(a, false);
  print_line("unhooked", unhooked, a.batch);
  const double hooked = median_step_ms(a, true);
  print_line("hooked", hooked, a.batch);
  std::printf("hookrt hooked/unhooked   %.3fx\n", hooked / unhooked);
  if (!a.json.empty()) {
    const nlohmann::ordered_json figures{{"backend", backend},       {"batch", a.batch},
                                         {"size", a.size},           {"steps", a.steps},
                                         {"unhooked_ms", unhooked},  {"hooked_ms", hooked},
                                         {"hooked_ratio", hooked / unhooked}};
    std::ofstream out(a.json);
    out << figures.dump(2) << "\n";
    if (!out) throw_bad_input("--json " + a.json + ": cannot write the file");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& status) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Time the ResNet18 train step with and without probes on every layer");
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_flag("--no-tf32", a->no_tf32, "GPU: full F32 convolutions and GEMMs");
  cmd->add_option("--batch", a->batch, "Batch size (default 256)")->check(CLI::PositiveNumber);
  cmd->add_option("--size", a->size, "Image size (default 224)")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", a->steps, "Timed steps (default 10)")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", a->warmup, "Untimed steps first (default 3)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", a->json, "Also write the figures here as JSON");
  cmd->callback([a, &status] { status = bench_main(*a); });
}

}  // namespace hookrt::cli
