// Parity comparisons (see parity.h).
#include "support/parity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <tuple>

namespace hookrt::testing {
namespace {

// A seed, batch, size and class count used nowhere else (not in tools/README.md, the CLI demo or
// other tests), so parity holds on a case nobody tuned for. 48x48 keeps the script at a few
// seconds; layer4 then sees a 2x2 map, so its train-mode BatchNorms normalise over only
// N*H*W = 12 values per channel, a hard case for the batch statistics and their backward.
// HOOKRT_PARITY_SEED / _BATCH / _SIZE / _CLASSES override them, to hold hookrt to PyTorch on any
// other case by hand.
int64_t parity_setting(const char* name, int64_t fallback) {
  const char* text = std::getenv(name);
  return text && *text ? std::stoll(text) : fallback;
}

}  // namespace

ReferenceOptions parity_reference_options(Mode mode) {
  ReferenceOptions options;
  options.seed = parity_setting("HOOKRT_PARITY_SEED", 20261126);
  options.batch = parity_setting("HOOKRT_PARITY_BATCH", 3);
  options.size = parity_setting("HOOKRT_PARITY_SIZE", 48);
  options.num_classes = parity_setting("HOOKRT_PARITY_CLASSES", 7);
  options.mode = mode;
  // HOOKRT_PARITY_TORCH_DEVICE=cuda holds hookrt to PyTorch's GPU step instead (scripts/device-check).
  if (const char* device = std::getenv("HOOKRT_PARITY_TORCH_DEVICE"); device && *device) options.torch_device = device;
  return options;  // SGD: lr 0.1, momentum 0.9, weight_decay 1e-4, Nesterov (ReferenceOptions'
                   // defaults)
}

double max_abs(const Tensor& t) {
  const Values v(t);
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (std::isfinite(v[i])) m = std::max(m, std::abs(v[i]));
  return m;
}

// a - b in float64 (exact for float32 operands).
Tensor difference(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), DType::F64);
  const Values va(a), vb(b);
  for (int64_t i = 0; i < out.numel(); ++i) out.data<double>()[i] = va[i] - vb[i];
  return out;
}

Tolerance scaled_tolerance(const Tensor& want) {
  return {kAtolPerScale * max_abs(want), kRtol, Tensor()};
}

std::string index_string(const Shape& shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::string text = "[";
  for (size_t d = 0; d < index.size(); ++d) text += (d ? ", " : "") + std::to_string(index[d]);
  return text + "]";
}

std::string fmt(double value) {
  char text[40];
  std::snprintf(text, sizeof text, "%.9g", value);
  return text;
}


double bound_ratio(double got, double want, double bound) {
  if (std::isnan(want) || std::isinf(want))
    return (got == want || (std::isnan(got) && std::isnan(want))) ? 0 : INFINITY;
  const double diff = std::abs(got - want);
  if (std::isnan(diff)) return INFINITY;
  if (bound == 0) return diff == 0 ? 0 : INFINITY;
  return diff / bound;
}

ElementsCheck check_elements(const Tensor& got, const Tensor& want, const Tolerance& tolerance) {
  const Values g(got), w(want);
  const bool rounding = tolerance.rounding_of.defined();
  const Values r(rounding ? tolerance.rounding_of : want);
  constexpr double kUlp = std::numeric_limits<float>::epsilon();
  ElementsCheck check;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double a = g[i], b = w[i];
    double bound = tolerance.atol + tolerance.rtol * std::abs(b);
    if (rounding) bound += kUlp * std::abs(r[i]);
    const double ratio = bound_ratio(a, b, bound);
    if (ratio > 1) ++check.failing;
    if (check.worst < 0 || ratio > check.worst_ratio) check = {check.failing, i, ratio, a, b};
  }
  return check;
}

// ---- hookrt's side ------------------------------------------------------------------------------

void collect(const ProbeRecord& record, HookedStep& step) {
  const std::string key = record.capture_key();
  if (step.shapes.count(key)) step.repeated_keys.push_back(key);
  step.firing_order.push_back(key);
  step.shapes[key] = record.shape;
  for (const ProbeResult& result : record.results) {
    if (const auto* capture = std::get_if<CaptureResult>(&result))
      step.captures[key] = capture->tensor;
    if (const auto* stats = std::get_if<StatsResult>(&result)) step.stats[key] = *stats;
  }
}

// One step with `capture,stats` on every event of every module and every parameter.
HookedStep run_hooked_step(const ReferenceData& reference, const TensorMap& weights,
                           const BackendFactory& make_backend, MemoryFormat format) {
  Model model = Model::resnet18(reference.options.num_classes);
  model.load_state_dict(weights, "weights.safetensors");
  const ProbeList probes = probes::Capture{} | probes::Stats{};
  for (HookWhen when :
       {HookWhen::ForwardPre, HookWhen::Forward, HookWhen::BackwardPre, HookWhen::Backward})
    model.register_hook(when, "*", probes);
  model.register_grad_hook("*", probes);

  ExecutorOptions options;
  options.mode = reference.step.mode;
  options.memory_format = format;
  if (reference.step.sgd) options.sgd = *reference.step.sgd;
  Executor executor(model, make_backend(), options);
  HookedStep step;
  executor.subscribe([&step](const ProbeRecord& record) { collect(record, step); });
  step.result = executor.step(reference.input, reference.labels);
  executor.sync_model();
  for (const std::string& key : model.state_keys())
    step.state_after[key] = model.tensor(key).clone();
  return step;
}

// ---- comparisons
// ---------------------------------------------------------------------------------

// For grad firings, the module owning the parameter ("@layer1.0.bn1"); "" for other firings.
std::string grad_owner(const std::string& key) {
  const std::string prefix = "step0/grad/", suffix = "/grad";
  if (!key.starts_with(prefix) || !key.ends_with(suffix)) return "";
  const std::string param = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
  const size_t dot = param.rfind('.');
  return "@" + (dot == std::string::npos ? std::string() : param.substr(0, dot));
}

// Keys in firing order, except that among one module's parameter gradients firing back to back
// the order is sorted away: it is autograd's internal detail (torch 1.13 runs fc.bias's hook
// before fc.weight's, as addmm lists the bias first, but BatchNorm's weight before its bias).
std::vector<std::string> comparable_order(const std::vector<std::string>& keys) {
  std::vector<std::string> order;
  for (size_t i = 0, j = 0; i < keys.size(); i = j) {
    const std::string owner = grad_owner(keys[i]);
    for (j = i + 1; !owner.empty() && j < keys.size() && grad_owner(keys[j]) == owner;) ++j;
    const size_t run = order.size();
    order.insert(order.end(), keys.begin() + static_cast<std::ptrdiff_t>(i),
                 keys.begin() + static_cast<std::ptrdiff_t>(j));
    std::sort(order.begin() + static_cast<std::ptrdiff_t>(run), order.end());
  }
  return order;
}

void compare_order(const ReferenceStep& reference, const HookedStep& hooked, ParityReport& report) {
  const std::vector<std::string> want = comparable_order(reference.capture_keys);
  const std::vector<std::string> got = comparable_order(hooked.firing_order);
  const auto [w, g] = std::mismatch(want.begin(), want.end(), got.begin(), got.end());
  if (w == want.end() && g == got.end()) return report.passed("firing order");
  report.fail(w == want.end() ? "firing order" : *w,
              "firing #" + std::to_string(w - want.begin()) + " differs: hookrt fires " +
                  (g == got.end() ? std::string("nothing") : *g) + ", PyTorch " +
                  (w == want.end() ? std::string("nothing") : *w));
}

// The same hook firings: every key PyTorch recorded and no other (names, #k suffixes, and no
// grad_input where PyTorch passes None), each once, and in PyTorch's order.
ParityReport compare_firings(const ReferenceStep& reference, const HookedStep& hooked) {
  ParityReport report("hook firings");
  const std::set<std::string> want(reference.capture_keys.begin(), reference.capture_keys.end());
  for (const std::string& key : want) {
    if (hooked.captures.count(key))
      report.passed(key);
    else
      report.fail(key, "PyTorch fires this hook, hookrt did not capture it");
  }
  for (const auto& [key, tensor] : hooked.captures)
    if (!want.count(key)) report.fail(key, "hookrt captured it, PyTorch has no such firing");
  for (const std::string& key : hooked.repeated_keys)
    report.fail(key, "hookrt delivered this key more than once");
  for (const std::string& module : reference.grad_input_absent_for) {
    const std::string key = "step0/backward/" + module + "/grad_input";
    if (hooked.captures.count(key))
      report.fail(key, "PyTorch passes grad_input None here; hookrt captured one");
  }
  if (report.ok())
    compare_order(reference, hooked, report);  // with the same keys, else it says nothing new
  return report;
}

// Every hook tensor, then the logits and the loss.
ParityReport compare_tensors(const ReferenceStep& reference, const HookedStep& hooked) {
  ParityReport report("hook tensors, logits and loss");
  for (const std::string& key : reference.capture_keys) {
    const auto got = hooked.captures.find(key);
    if (got == hooked.captures.end()) continue;  // compare_firings reports it
    const Tensor& want = reference.tensors.at(key);
    if (got->second.dtype() != DType::F32)
      report.fail(key, "dtype " + dtype_name(got->second.dtype()) + ", not F32");
    else
      report.check_tensor(key, got->second, want, scaled_tolerance(want));
  }
  const Tensor& logits = reference.tensors.at("logits");
  report.check_tensor("logits", hooked.result.logits, logits, scaled_tolerance(logits));
  // The loss is one number: atol is its own scale, so the bound is 2e-4 relative.
  const double loss = reference.tensors.at("loss").item(0);
  if (!hooked.result.loss)
    report.fail("loss", "hookrt gave no loss although labels were given");
  else
    report.check_number("loss", "value", *hooked.result.loss, loss,
                        (kAtolPerScale + kRtol) * std::abs(loss));
  return report;
}

// Train mode: the state after one SGD step. Float tensors with the per-tensor tolerance; then the
// step itself (after - before), whose scale is the gradient's rather than the parameter's, so a
// slip in weight decay (1e-5 of the parameter) or Nesterov shows; num_batches_tracked exactly.
const Tensor& state_before(const ReferenceData& reference, const std::string& key) {
  for (const auto& [name, tensor] : reference.weights)
    if (name == key) return tensor;
  throw Error("the reference weights have no key '" + key + "'");
}

ParityReport compare_state_after(const ReferenceData& reference, const HookedStep& hooked) {
  ParityReport report("state after the SGD step");
  for (const auto& [key, before] : reference.weights) {
    const std::string after_key = "after/" + key;
    const Tensor& want =
        reference.step.tensors.at(after_key);  // make_reference_data checked it is there
    const auto got = hooked.state_after.find(key);
    if (got == hooked.state_after.end()) {
      report.fail(after_key, "hookrt's model has no such state key");
      continue;
    }
    if (want.dtype() == DType::I64) {  // num_batches_tracked
      report.check_number(after_key, "value", got->second.item(0), want.item(0), 0);
      continue;
    }
    report.check_tensor(after_key, got->second, want, scaled_tolerance(want));
    if (got->second.shape() != before.shape()) continue;  // reported just above
    const Tensor want_step = difference(want, before), got_step = difference(got->second, before);
    Tolerance step_tolerance = scaled_tolerance(want_step);
    step_tolerance.rounding_of = want;
    report.check_tensor(after_key + " - before", got_step, want_step, step_tolerance);
  }
  return report;
}

void check_optional(const std::string& key, const std::string& field,
                    const std::optional<double>& got, const std::optional<double>& want,
                    double bound, ParityReport& report) {
  if (got.has_value() != want.has_value()) {
    report.fail(key, field + ": hookrt " + (got ? fmt(*got) : "null") + ", torch " +
                         (want ? fmt(*want) : "null"));
    return;
  }
  if (want) report.check_number(key, field, *got, *want, bound);
}

// min and max are elements of the tensor, so they get the tensor's own tolerance; the float64
// summaries get kStatsRtol (mean relative to mean |x|).
void check_stats_values(const std::string& key, const StatsResult& got, const StatsResult& want,
                        ParityReport& report) {
  const double atol = kAtolPerScale * want.abs_max.value_or(0);
  const auto element_bound = [&](const std::optional<double>& v) {
    return atol + kRtol * std::abs(v.value_or(0));
  };
  const auto relative_bound = [](const std::optional<double>& v) {
    return kStatsRtol * std::abs(v.value_or(0));
  };
  check_optional(key, "min", got.min, want.min, element_bound(want.min), report);
  check_optional(key, "max", got.max, want.max, element_bound(want.max), report);
  const double mean_abs = want.count > 0 ? want.l1 / static_cast<double>(want.count) : 0;
  check_optional(key, "mean", got.mean, want.mean, kStatsRtol * mean_abs, report);
  check_optional(key, "std", got.std, want.std, relative_bound(want.std), report);
  check_optional(key, "abs_max", got.abs_max, want.abs_max, relative_bound(want.abs_max), report);
  report.check_number(key, "l1", got.l1, want.l1, kStatsRtol * std::abs(want.l1));
  report.check_number(key, "l2", got.l2, want.l2, kStatsRtol * std::abs(want.l2));
}

void check_stats_counts(const std::string& key, const StatsResult& got, const StatsResult& want,
                        ParityReport& report) {
  for (auto [field, a, b] : {std::tuple{"count", got.count, want.count},
                             {"nan", got.nan, want.nan},
                             {"posinf", got.posinf, want.posinf},
                             {"neginf", got.neginf, want.neginf}})
    report.check_number(key, field, static_cast<double>(a), static_cast<double>(b), 0);
}

ParityReport compare_stats(const ReferenceStep& reference, const HookedStep& hooked) {
  ParityReport report("stats records");
  for (const std::string& key : reference.capture_keys) {
    const auto found = hooked.stats.find(key);
    if (found == hooked.stats.end()) {
      report.fail(key, "no stats record from hookrt");
      continue;
    }
    const StatsResult& got = found->second;
    const StatsResult& want = reference.stats.at(key);
    if (hooked.shapes.at(key) != reference.stats_shapes.at(key))
      report.fail(key, "record shape " + shape_string(hooked.shapes.at(key)) + ", torch " +
                           shape_string(reference.stats_shapes.at(key)));
    check_stats_counts(key, got, want, report);
    check_stats_values(key, got, want, report);
  }
  return report;
}

}  // namespace hookrt::testing
