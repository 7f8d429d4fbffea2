// `hookrt bench`: the ResNet18 train step without hooks and with stats+zeros+nonfinite on every
// module's forward output and backward gradients and on every parameter gradient, timed on the
// chosen device, printed in the format of benchmarks/torch_gpu_baseline.py so that the two read
// side by side, and optionally written as JSON. After both are timed, one more step of each runs
// under CUPTI's launch counter: its kernels, memcpys and memsets are printed and written too, with
// the device time of each kernel family, and the families whose time the probes change most.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/gpu_flags.h"
#include "cli/loss_scale_option.h"
#include "cli/memory_format_option.h"
#include "cli/number_checks.h"
#include "cli/precision_option.h"
#include "cuda_entry.h"
#include "device_work_times.h"
#include "hookrt/devices.h"
#include "hookrt/executor.h"
#include "train_step_setup.h"

namespace hookrt::cli {

namespace {

struct BenchArgs {
  std::string device = "auto", json, precision = "fp32", memory_format = "auto", loss_scale = "auto";
  int64_t batch = 256, size = 224, steps = 10, warmup = 3;
  // Each off switch undoes one of the GPU path's speedups, so that a run can measure what it gains
  // (--heuristic-conv is one of the GPU flags).
  bool no_graphs = false, no_epilogue_probes = false;
  GpuFlags gpu;
};

// One variant of the step, kept after its timing so that one more of its steps can be counted
// once both variants are timed: counting turns CUPTI on, and no timed step runs under it.
struct BenchVariant {
  BenchVariant(const BenchArgs& a, bool hooked)
      : model(make_model(hooked)),
        executor(model, select_backend(parse_device_choice(a.device), gpu_options(a.gpu)).backend, executor_options(a)),
        // The batch lives on the step's device, as PyTorch's baseline keeps its batch on the GPU
        // (and a data loader's prefetched batch would be): the figure is the step's own, not a
        // host-to-device copy of the batch every step. The labels stay on the host, where the
        // step checks their range.
        x(executor.backend().from_host(bench::random_batch(a.batch, a.size))),
        y(bench::batch_labels(a.batch)) {}

  static Model make_model(bool hooked) {
    Model model = Model::resnet18(1000);
    if (hooked) bench::add_benchmark_probes(model);
    return model;
  }
  static ExecutorOptions executor_options(const BenchArgs& a) {
    ExecutorOptions options = bench::train_options();
    options.precision = parse_precision(a.precision);
    options.memory_format = memory_format_choice(a.memory_format);
    options.loss_scaling = loss_scaling_choice(a.loss_scale);
    options.replay_graphs = !a.no_graphs;
    options.probes_in_epilogues = !a.no_epilogue_probes;
    return options;
  }

  Model model;
  Executor executor;
  Tensor x, y;
  StepPath timed_path = StepPath::Eager;  // how the last timed step ran
};

// Median wall time of `steps` steps after `warmup`; each step ends by reading its loss, so its
// time covers the device's work.
double median_step_ms(const BenchArgs& a, BenchVariant& variant) {
  std::vector<double> times;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    const auto begin = std::chrono::steady_clock::now();
    variant.timed_path = variant.executor.step(variant.x, variant.y).path;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    if (i >= a.warmup) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

// The GPU work of one more step, or why it was not counted. A counting failure becomes the reason
// rather than an error: the timings already taken still get printed and written.
struct LaunchCount {
  std::optional<cuda::LaunchCounts> counts;
  std::string why_not;
};

LaunchCount not_on_gpu() { return {std::nullopt, "the CPU backend launches no GPU work"}; }

LaunchCount count_step_launches(BenchVariant& variant) {
  LaunchCount count;
  try {
    count.counts = cuda::count_launches([&] { variant.executor.step(variant.x, variant.y); }, &count.why_not);
  } catch (const Error& e) {
    count.why_not = e.what();
  }
  return count;
}

void print_line(const std::string& name, double ms, int64_t batch) {
  std::printf("hookrt %-14s %8.2f ms/step  %8.0f images/s\n", name.c_str(), ms, static_cast<double>(batch) / ms * 1e3);
  std::fflush(stdout);
}

// How the timed steps ran: replayed as one graph, or op by op and why.
std::string steps_line(const BenchVariant& variant) {
  if (variant.timed_path != StepPath::Eager) return "replayed as one CUDA graph";
  return "op by op (" + variant.executor.why_last_step_eager() + ")";
}

void print_launches(const std::string& name, const LaunchCount& count) {
  if (count.counts) {
    std::printf("hookrt %s launches/step: %lld kernels, %lld memcpy, %lld memset\n", name.c_str(),
                static_cast<long long>(count.counts->kernels), static_cast<long long>(count.counts->memcpys),
                static_cast<long long>(count.counts->memsets));
  } else {
    std::printf("hookrt %s launches/step: not counted (%s)\n", name.c_str(), count.why_not.c_str());
  }
  std::fflush(stdout);
}

// How many of the hooked step's device-time changes the table shows.
constexpr size_t kShownChanges = 12;

// Where the hooked step's device time differs from the unhooked step's, kernel family by family:
// what the probes cost, read from the run itself.
void print_device_time_changes(const LaunchCount& unhooked, const LaunchCount& hooked) {
  if (!unhooked.counts || !hooked.counts) return;
  std::printf("hookrt device time/step: unhooked %.2f ms, hooked %.2f ms (kernels, memcpys and memsets summed)\n",
              total_ms(unhooked.counts->times), total_ms(hooked.counts->times));
  std::printf("hookrt hooked - unhooked, by kernel   ms/step  (unhooked -> hooked ms, items)\n");
  for (const DeviceWorkChange& change : largest_changes(unhooked.counts->times, hooked.counts->times, kShownChanges))
    std::printf("hookrt   %+8.3f  %-60.60s  %7.3f -> %7.3f  (%lld -> %lld)\n", change.delta_ms(), change.name.c_str(),
                change.before.ms, change.after.ms, static_cast<long long>(change.before.items),
                static_cast<long long>(change.after.items));
  std::fflush(stdout);
}

nlohmann::ordered_json launches_json(const LaunchCount& count) {
  if (!count.counts) return nullptr;
  return {{"kernels", count.counts->kernels}, {"memcpy", count.counts->memcpys}, {"memset", count.counts->memsets}};
}

nlohmann::ordered_json device_time_json(const LaunchCount& count) {
  if (!count.counts) return nullptr;
  nlohmann::ordered_json times = nlohmann::ordered_json::array();
  for (const DeviceWorkTime& time : count.counts->times)
    times.push_back({{"name", time.name}, {"items", time.items}, {"ms", time.ms}});
  return times;
}

// What the run was asked for, beside its figures: a variant's speed means little without it.
// `layout` is the step's memory format as it ran ("NCHW" or "NHWC"), which --memory-format auto
// leaves to the device.
nlohmann::ordered_json settings_json(const BenchArgs& a, const std::string& layout) {
  return {{"precision", a.precision},
          {"layout", layout},
          {"loss_scale", a.loss_scale},
          {"tf32", !a.gpu.no_tf32},
          {"graphs", !a.no_graphs},
          {"epilogue_probes", !a.no_epilogue_probes},
          {"conv_algorithms", a.gpu.heuristic_conv ? "heuristic" : "measured"},
          {"deterministic", a.gpu.deterministic},
          {"f32_batchnorm", a.gpu.own_batchnorm ? "hookrt" : "cudnn"}};
}

void write_json(const BenchArgs& a, const std::string& backend, double unhooked, double hooked,
                const BenchVariant* unhooked_variant, const BenchVariant& hooked_variant,
                const LaunchCount& unhooked_launches, const LaunchCount& hooked_launches) {
  nlohmann::ordered_json figures{{"backend", backend},       {"batch", a.batch},
                                 {"size", a.size},           {"steps", a.steps},
                                 {"unhooked_ms", unhooked},  {"hooked_ms", hooked},
                                 {"hooked_ratio", hooked / unhooked}};
  // The unhooked variant is gone by now on the CPU, where no step is replayed.
  figures["unhooked_steps"] = unhooked_variant ? step_path_name(unhooked_variant->timed_path) : "eager";
  figures["hooked_steps"] = step_path_name(hooked_variant.timed_path);
  if (hooked_variant.timed_path == StepPath::Eager)
    figures["hooked_eager_because"] = hooked_variant.executor.why_last_step_eager();
  figures["unhooked_launches"] = launches_json(unhooked_launches);
  figures["hooked_launches"] = launches_json(hooked_launches);
  figures["unhooked_device_time"] = device_time_json(unhooked_launches);
  figures["hooked_device_time"] = device_time_json(hooked_launches);
  if (!unhooked_launches.counts || !hooked_launches.counts)
    figures["launches_not_counted"] = !unhooked_launches.counts ? unhooked_launches.why_not : hooked_launches.why_not;
  const Executor& executor = hooked_variant.executor;
  const MemoryFormat format = memory_format_choice(a.memory_format)
                                  .value_or(default_memory_format(executor.backend().device(), parse_precision(a.precision)));
  figures["settings"] = settings_json(a, format == MemoryFormat::ChannelsLast ? "NHWC" : "NCHW");
  std::ofstream out(a.json);
  out << figures.dump(2) << "\n";
  if (!out) throw_bad_input("--json " + a.json + ": cannot write the file");
}

int bench_main(const BenchArgs& a) {
  const std::string backend = select_backend(parse_device_choice(a.device), {}).backend->name();
  std::printf("hookrt %s %s, batch %lld, %lldx%lld, %lld steps after %lld warmup\n", backend.c_str(),
              a.precision.c_str(), static_cast<long long>(a.batch), static_cast<long long>(a.size), static_cast<long long>(a.size),
              static_cast<long long>(a.steps), static_cast<long long>(a.warmup));
  std::optional<BenchVariant> unhooked_variant(std::in_place, a, false);
  const double unhooked = median_step_ms(a, *unhooked_variant);
  print_line("unhooked", unhooked, a.batch);
  std::printf("hookrt unhooked steps: %s\n", steps_line(*unhooked_variant).c_str());
  // On the GPU both executors live on until both are timed, then each counts one more step. The
  // CPU has no launches to count, and its executor goes before the next one takes as much memory.
  const bool on_gpu = unhooked_variant->executor.backend().device() == Device::CUDA;
  if (!on_gpu) unhooked_variant.reset();
  BenchVariant hooked_variant(a, true);
  const double hooked = median_step_ms(a, hooked_variant);
  print_line("hooked", hooked, a.batch);
  std::printf("hookrt hooked steps: %s\n", steps_line(hooked_variant).c_str());
  std::printf("hookrt hooked/unhooked   %.3fx\n", hooked / unhooked);
  const LaunchCount unhooked_launches = on_gpu ? count_step_launches(*unhooked_variant) : not_on_gpu();
  print_launches("unhooked", unhooked_launches);
  const LaunchCount hooked_launches = on_gpu ? count_step_launches(hooked_variant) : not_on_gpu();
  print_launches("hooked", hooked_launches);
  print_device_time_changes(unhooked_launches, hooked_launches);
  if (!a.json.empty()) write_json(a, backend, unhooked, hooked, unhooked_variant ? &*unhooked_variant : nullptr, hooked_variant,
                                  unhooked_launches, hooked_launches);
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& status) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Time the ResNet18 train step with and without probes on every layer");
  cmd->add_option("--device", a->device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  add_precision_option(*cmd, a->precision);
  add_memory_format_option(*cmd, a->memory_format);
  add_loss_scale_option(*cmd, a->loss_scale);
  add_gpu_flags(*cmd, a->gpu);
  cmd->add_flag("--no-graphs", a->no_graphs, "GPU: run each step op by op rather than replaying it as one CUDA graph");
  cmd->add_flag("--no-epilogue-probes", a->no_epilogue_probes,
                "GPU: ReLUs and batch norms write their tensors and the probes read them again, and the "
                "tensors they read are probed on their own, rather than in their passes");
  cmd->add_option("--batch", a->batch, "Batch size (default 256)")->check(whole_at_least(1));
  cmd->add_option("--size", a->size, "Image size (default 224)")->check(whole_at_least(1));
  cmd->add_option("--steps", a->steps, "Timed steps (default 10)")->check(whole_at_least(1));
  cmd->add_option("--warmup", a->warmup, "Untimed steps first (default 3)")->check(whole_at_least(0));
  cmd->add_option("--json", a->json, "Also write the figures here as JSON");
  cmd->callback([a, &status] { status = bench_main(*a); });
}

}  // namespace hookrt::cli
