// `hookrt bench`: the ResNet18 train step without hooks and with stats+zeros+nonfinite on every
// module's forward output and backward gradients and on every parameter gradient, timed on the
// chosen device, printed in the format of benchmarks/torch_gpu_baseline.py so that the two read
// side by side, and optionally written as JSON. After both are timed, one more step of each runs
// under CUPTI's launch counter: its kernels, memcpys and memsets are printed and written too, with
// the device time of each kernel family, and the families whose time the probes change most.
// The JSON is written again as each figure is measured: a bench interrupted (SIGINT or SIGTERM,
// between steps; exit 130) or failing part way keeps what it timed and says why it stopped.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/figures_file.h"
#include "cli/gpu_flags.h"
#include "cli/interrupt.h"
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
};

// The GPU work of one more step, or why it was not counted. A counting failure becomes the reason
// rather than an error: the timings already taken still get printed and written.
struct LaunchCount {
  std::optional<cuda::LaunchCounts> counts;
  std::string why_not;
  bool step_skipped = false;  // under loss scaling: the counted step overflowed and skipped its update
};

LaunchCount not_on_gpu() { return {std::nullopt, "the CPU backend launches no GPU work"}; }

LaunchCount count_step_launches(BenchVariant& variant) {
  LaunchCount count;
  try {
    count.counts = cuda::count_launches(
        [&] { count.step_skipped = variant.executor.step(variant.x, variant.y).overflowed; }, &count.why_not);
  } catch (const Error& e) {
    count.why_not = e.what();
  }
  return count;
}

// One variant's figures, as far as the run has got: each is set once it is measured.
struct VariantFigures {
  std::optional<double> ms;  // median of the timed steps; unset until all of them ran
  StepPath path = StepPath::Eager;
  std::string eager_because;  // why the timed steps ran op by op, where they did
  // Under loss scaling: how many timed steps overflowed and skipped their update (cheaper steps,
  // which PyTorch's baseline reports the same way).
  std::optional<int64_t> skipped_steps;
  std::optional<LaunchCount> launches;  // unset until counted (or found not countable)
};

// Times `steps` steps after `warmup`; each step ends by reading its loss, so its time covers the
// device's work. Returns false, leaving `figures.ms` unset, where an interrupt stops the run
// between two steps.
bool time_variant(const BenchArgs& a, BenchVariant& variant, VariantFigures& figures) {
  std::vector<double> times;
  int64_t skipped = 0;
  bool scaled = false;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    if (interrupt_requested()) return false;
    const auto begin = std::chrono::steady_clock::now();
    const StepResult result = variant.executor.step(variant.x, variant.y);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    if (i < a.warmup) continue;
    times.push_back(ms);
    figures.path = result.path;
    scaled = result.loss_scale.has_value();
    skipped += result.overflowed;
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  figures.ms = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  figures.eager_because = figures.path == StepPath::Eager ? variant.executor.why_last_step_eager() : "";
  if (scaled) figures.skipped_steps = skipped;
  return true;
}

void print_line(const std::string& name, const VariantFigures& figures, int64_t batch, int64_t steps) {
  std::printf("hookrt %-14s %8.2f ms/step  %8.0f images/s\n", name.c_str(), *figures.ms,
              static_cast<double>(batch) / *figures.ms * 1e3);
  // How the timed steps ran: replayed as one graph, or op by op and why.
  const std::string how =
      figures.path != StepPath::Eager ? "replayed as one CUDA graph" : "op by op (" + figures.eager_because + ")";
  std::printf("hookrt %s steps: %s", name.c_str(), how.c_str());
  if (figures.skipped_steps)
    std::printf("; %lld of %lld skipped on overflow", static_cast<long long>(*figures.skipped_steps),
                static_cast<long long>(steps));
  std::printf("\n");
  std::fflush(stdout);
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
// `layout` is the step's memory format as it runs ("NCHW" or "NHWC"), which --memory-format auto
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

// The run's figures so far, written to --json after each one is measured (FiguresFile), so that
// a run stopped early, by an interrupt, a time limit or a failing variant, keeps what it timed and
// says why the rest is missing.
class BenchReport {
 public:
  BenchReport(const BenchArgs& a, std::string backend, std::string layout)
      : a_(a), backend_(std::move(backend)), layout_(std::move(layout)) {
    if (!a.json.empty()) file_.emplace(a.json, "--json");
  }

  VariantFigures unhooked, hooked;

  bool written() const { return file_.has_value(); }
  // Before any step: a --json path that cannot be written is bad input, found before the run
  // spends its time.
  void start() const {
    if (file_) file_->start(figures_json());
  }
  void update() const {
    if (file_) file_->update(figures_json());
  }
  void finish() const {
    if (file_) file_->finish(figures_json());
  }
  // Why the run ended before its last figure: written, then the caller stops.
  void stop(const std::string& why) {
    stopped_ = why;
    finish();
  }

 private:
  // The fields in a fixed order, the timings first (benchmarks/device_figures.py reads them by
  // name); a figure not measured yet is absent.
  nlohmann::ordered_json figures_json() const {
    nlohmann::ordered_json figures{{"backend", backend_}, {"batch", a_.batch}, {"size", a_.size}, {"steps", a_.steps}};
    if (unhooked.ms) figures["unhooked_ms"] = *unhooked.ms;
    if (hooked.ms) figures["hooked_ms"] = *hooked.ms;
    if (unhooked.ms && hooked.ms) figures["hooked_ratio"] = *hooked.ms / *unhooked.ms;
    for (const auto& [name, variant] : {std::pair{"unhooked", &unhooked}, std::pair{"hooked", &hooked}}) {
      if (!variant->ms) continue;
      figures[std::string(name) + "_steps"] = step_path_name(variant->path);
      if (variant->path == StepPath::Eager) figures[std::string(name) + "_eager_because"] = variant->eager_because;
      if (variant->skipped_steps) figures[std::string(name) + "_skipped_steps"] = *variant->skipped_steps;
    }
    if (unhooked.launches && hooked.launches) add_launches(figures);
    figures["settings"] = settings_json(a_, layout_);
    if (!stopped_.empty()) figures["stopped"] = stopped_;
    return figures;
  }
  void add_launches(nlohmann::ordered_json& figures) const {
    figures["unhooked_launches"] = launches_json(*unhooked.launches);
    figures["hooked_launches"] = launches_json(*hooked.launches);
    figures["unhooked_device_time"] = device_time_json(*unhooked.launches);
    figures["hooked_device_time"] = device_time_json(*hooked.launches);
    for (const auto& [name, variant] : {std::pair{"unhooked", &unhooked}, std::pair{"hooked", &hooked}})
      if (variant->launches->counts && variant->skipped_steps)
        figures[std::string(name) + "_counted_step_skipped"] = variant->launches->step_skipped;
    if (!unhooked.launches->counts || !hooked.launches->counts)
      figures["launches_not_counted"] = !unhooked.launches->counts ? unhooked.launches->why_not : hooked.launches->why_not;
  }

  const BenchArgs& a_;
  std::string backend_, layout_;
  std::string stopped_;
  std::optional<FiguresFile> file_;
};

// Exit status of a bench stopped by an interrupt, as `run` and `train` stop.
constexpr int kInterrupted = 130;

int interrupted(BenchReport& report, const std::string& where) {
  std::fprintf(stderr, "hookrt bench: interrupted %s%s%s\n", where.c_str(),
               report.unhooked.ms ? "; the figures timed so far are printed above" : "",
               report.unhooked.ms && report.written() ? " and written" : "");
  report.stop("interrupted " + where);
  return kInterrupted;
}

// Times one variant, its figure written as soon as it is known; false where interrupted.
bool time_and_report(const BenchArgs& a, BenchVariant& variant, VariantFigures& figures, BenchReport& report,
                     const std::string& name) {
  if (!time_variant(a, variant, figures)) return false;
  print_line(name, figures, a.batch, a.steps);
  report.update();
  return true;
}

int bench_variants(const BenchArgs& a, BenchReport& report, std::string& phase) {
  phase = "the unhooked variant";
  std::optional<BenchVariant> unhooked_variant(std::in_place, a, false);
  if (!time_and_report(a, *unhooked_variant, report.unhooked, report, "unhooked"))
    return interrupted(report, "while timing the unhooked variant");
  // On the GPU both executors live on until both are timed, then each counts one more step. The
  // CPU has no launches to count, and its executor goes before the next one takes as much memory.
  const bool on_gpu = unhooked_variant->executor.backend().device() == Device::CUDA;
  if (!on_gpu) unhooked_variant.reset();
  phase = "the hooked variant";
  BenchVariant hooked_variant(a, true);
  if (!time_and_report(a, hooked_variant, report.hooked, report, "hooked"))
    return interrupted(report, "while timing the hooked variant");
  std::printf("hookrt hooked/unhooked   %.3fx\n", *report.hooked.ms / *report.unhooked.ms);
  if (interrupt_requested()) return interrupted(report, "before counting launches");
  phase = "counting launches";
  report.unhooked.launches = on_gpu ? count_step_launches(*unhooked_variant) : not_on_gpu();
  print_launches("unhooked", *report.unhooked.launches);
  report.hooked.launches = on_gpu ? count_step_launches(hooked_variant) : not_on_gpu();
  print_launches("hooked", *report.hooked.launches);
  print_device_time_changes(*report.unhooked.launches, *report.hooked.launches);
  report.finish();
  return 0;
}

int bench_main(const BenchArgs& a) {
  Device device;
  std::string backend;
  {
    const auto selected = select_backend(parse_device_choice(a.device), {});
    device = selected.backend->device();
    backend = selected.backend->name();
  }
  const MemoryFormat format =
      memory_format_choice(a.memory_format).value_or(default_memory_format(device, parse_precision(a.precision)));
  BenchReport report(a, backend, format == MemoryFormat::ChannelsLast ? "NHWC" : "NCHW");
  report.start();
  install_interrupt_handlers();
  std::printf("hookrt %s %s, batch %lld, %lldx%lld, %lld steps after %lld warmup\n", backend.c_str(),
              a.precision.c_str(), static_cast<long long>(a.batch), static_cast<long long>(a.size), static_cast<long long>(a.size),
              static_cast<long long>(a.steps), static_cast<long long>(a.warmup));
  std::fflush(stdout);
  std::string phase;
  try {
    return bench_variants(a, report, phase);
  } catch (const std::exception& e) {
    // The failure goes on to the caller as it is; a report that cannot be written now only says so.
    try {
      report.stop(phase + " failed: " + e.what());
    } catch (const std::exception& unwritten) {
      std::fprintf(stderr, "hookrt bench: %s\n", unwritten.what());
    }
    throw;
  }
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
