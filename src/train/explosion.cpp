// The gradient-explosion localizer: one step's gradient readings put in backward order, judged
// against each series' running median, and the search for where non-finite values started.
#include "hookrt/explosion.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <utility>
#include <variant>

#include "hookrt/error.h"

namespace hookrt {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// What one record says about its tensor.
struct Reading {
  std::optional<double> l2;  // from a stats result: L2 over the finite elements
  bool nonfinite = false;    // NaN or Inf counted by a stats or nonfinite result
  bool informative = false;  // it carried either result
};

Reading read(const ProbeRecord& record) {
  Reading reading;
  for (const ProbeResult& result : record.results) {
    if (const auto* stats = std::get_if<StatsResult>(&result)) {
      if (!reading.l2) reading.l2 = stats->l2;
      reading.nonfinite = reading.nonfinite || stats->nan + stats->posinf + stats->neginf > 0;
      reading.informative = true;
    } else if (const auto* counts = std::get_if<NonFiniteResult>(&result)) {
      reading.nonfinite = reading.nonfinite || counts->nan + counts->posinf + counts->neginf > 0;
      reading.informative = true;
    }
  }
  // A norm that overflowed is as unusable as a NaN in the tensor.
  if (reading.l2 && !std::isfinite(*reading.l2)) reading.nonfinite = true;
  if (reading.nonfinite) reading.l2.reset();
  return reading;
}

// "layer1.0.relu#1" for the second call, as ProbeRecord::capture_key names it.
std::string firing_name(const std::string& module, int call) {
  if (call == 0) return module;
  std::string name = module;
  name += '#';
  name += std::to_string(call);
  return name;
}

// Whether module `path` lies strictly inside `container` (the root "" holds every other module).
bool is_inside(const std::string& path, const std::string& container) {
  if (container.empty()) return !path.empty();
  return path.size() > container.size() && path.compare(0, container.size(), container) == 0 &&
         path[container.size()] == '.';
}

int depth(const std::string& path) {
  return path.empty() ? 0 : 1 + static_cast<int>(std::count(path.begin(), path.end(), '.'));
}

// The mean of the two middle values for an even count, as numpy.median.
double median_of(const std::deque<double>& values) {
  std::vector<double> v(values.begin(), values.end());
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (v.size() % 2 == 1) return *mid;
  return (*std::max_element(v.begin(), mid) + *mid) / 2;
}

template <class T>
std::string text(T value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void check_options(const LocalizerOptions& options) {
  if (!std::isfinite(options.factor) || options.factor <= 0)
    throw_bad_input("explosion localizer: factor must be a finite number > 0, got " +
                    text(options.factor));
  if (options.window < 1)
    throw_bad_input("explosion localizer: window must be >= 1, got " + text(options.window));
  if (options.min_history < 1 || options.min_history > options.window)
    throw_bad_input("explosion localizer: min_history must be between 1 and window (" +
                    text(options.window) + "), got " + text(options.min_history));
}

// Order inside one module firing's unit: what arrived, what it passed on, its parameters' grads.
enum class Rank { GradOutput = 0, GradInput = 1, Param = 2 };

// One gradient reading of the open step.
struct GradientReading {
  std::string layer;   // series layer: firing name or parameter key
  std::string tensor;  // grad_output, grad_input, grad
  std::string unit;  // the firing it belongs to; a parameter grad belongs to its owner's first call
  std::string module;  // that firing's module path
  Rank rank = Rank::GradOutput;
  std::optional<double> norm;  // finite, or absent
  bool nonfinite = false;
};

// One forward firing's output in the open step.
struct ForwardOutput {
  std::string name;
  bool nonfinite = false;
};

// A gradient series across steps.
struct Series {
  std::string layer, tensor;
  std::deque<double> history;  // the last `window` unflagged finite norms
  int64_t observations = 0, flags = 0, nonfinite_steps = 0;
  double last = kNaN, max = kNaN;
  double ratio_sum = 0;
  int64_t ratio_count = 0;
  double step_norm = kNaN, step_ratio = kNaN;
};

using SeriesKey = std::pair<std::string, std::string>;  // (layer, tensor)

}  // namespace

struct ExplosionLocalizer::State {
  // Across steps.
  std::vector<Series> series;  // in backward order of first appearance
  std::map<SeriesKey, size_t> series_index;
  std::optional<int64_t> last_finished;
  // The open step.
  std::optional<int64_t> open_step;
  std::vector<GradientReading> readings;  // in arrival order
  std::map<SeriesKey, size_t> reading_index;
  std::map<std::string, bool> forward_inputs;  // firing -> its input held NaN/Inf
  std::vector<ForwardOutput> forward_outputs;  // in arrival order
  std::map<std::string, size_t> forward_output_index;
  std::optional<double> loss;

  void open(int64_t step);
  void add_gradient(const ProbeRecord& record, const Reading& reading);
  void add_forward(const ProbeRecord& record, const Reading& reading);
  std::vector<size_t> backward_order() const;
  Series& series_for(const GradientReading& reading);
  std::optional<LayerFlag> judge(const GradientReading& reading, int64_t index, int64_t step,
                                 const LocalizerOptions& options);
  void record_ratios();
  std::optional<NonFiniteOrigin> forward_origin() const;
  std::optional<NonFiniteOrigin> gradient_origin(const std::vector<size_t>& order) const;
  std::vector<std::string> gradient_propagators(const std::vector<size_t>& order,
                                                const std::string* producer_unit) const;
  void close(int64_t step);
};

void ExplosionLocalizer::State::open(int64_t step) {
  if (last_finished && step <= *last_finished)
    throw Error("explosion localizer: step " + text(step) + " arrived after step " +
                text(*last_finished) + " was finished");
  if (open_step && *open_step != step)
    throw Error("explosion localizer: step " + text(step) + " arrived while step " +
                text(*open_step) + " is open (finish_step(" + text(*open_step) + ") first)");
  open_step = step;
}

void ExplosionLocalizer::State::add_gradient(const ProbeRecord& record, const Reading& reading) {
  GradientReading gradient;
  gradient.module = record.module;
  if (record.when == HookWhen::Grad) {
    gradient.layer = record.param;
    gradient.unit = record.module;
    gradient.rank = Rank::Param;
  } else {
    gradient.layer = firing_name(record.module, record.call);
    gradient.unit = gradient.layer;
    gradient.rank = record.tensor == "grad_output" ? Rank::GradOutput : Rank::GradInput;
  }
  gradient.tensor = record.tensor;
  gradient.norm = reading.l2;
  gradient.nonfinite = reading.nonfinite;
  const SeriesKey key{gradient.layer, gradient.tensor};
  if (auto it = reading_index.find(key); it != reading_index.end()) {
    // Two hooks on the same tensor: one reading, non-finite if either saw NaN/Inf.
    GradientReading& seen = readings[it->second];
    seen.nonfinite = seen.nonfinite || gradient.nonfinite;
    if (seen.nonfinite)
      seen.norm.reset();
    else if (!seen.norm)
      seen.norm = gradient.norm;
    return;
  }
  reading_index.emplace(key, readings.size());
  readings.push_back(std::move(gradient));
}

void ExplosionLocalizer::State::add_forward(const ProbeRecord& record, const Reading& reading) {
  const std::string name = firing_name(record.module, record.call);
  if (record.when == HookWhen::ForwardPre) {
    forward_inputs[name] = forward_inputs[name] || reading.nonfinite;
    return;
  }
  auto [it, inserted] = forward_output_index.try_emplace(name, forward_outputs.size());
  if (inserted) forward_outputs.push_back({name, false});
  forward_outputs[it->second].nonfinite =
      forward_outputs[it->second].nonfinite || reading.nonfinite;
}

// Reading indices in backward order, as explosion.h defines it.
std::vector<size_t> ExplosionLocalizer::State::backward_order() const {
  struct Unit {
    std::string module;
    std::vector<size_t> readings;
  };
  // Readings are in arrival order, so units come out in the order of their first reading.
  std::vector<Unit> units;
  std::map<std::string, size_t> unit_index;
  for (size_t i = 0; i < readings.size(); ++i) {
    auto [it, inserted] = unit_index.try_emplace(readings[i].unit, units.size());
    if (inserted) units.push_back({readings[i].module, {}});
    units[it->second].readings.push_back(i);
  }
  std::vector<size_t> order(units.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::vector<size_t> containers;
  for (size_t c = 0; c < units.size(); ++c) {
    const bool holds_others = std::any_of(units.begin(), units.end(), [&](const Unit& unit) {
      return is_inside(unit.module, units[c].module);
    });
    if (holds_others) containers.push_back(c);
  }
  // Innermost first, so an outer container lands after the inner ones it holds.
  std::stable_sort(containers.begin(), containers.end(), [&](size_t a, size_t b) {
    return depth(units[a].module) > depth(units[b].module);
  });
  for (size_t c : containers) {
    const size_t at = static_cast<size_t>(std::find(order.begin(), order.end(), c) - order.begin());
    size_t last = at;
    for (size_t k = 0; k < order.size(); ++k)
      if (is_inside(units[order[k]].module, units[c].module)) last = std::max(last, k);
    if (last == at) continue;
    order.erase(order.begin() + static_cast<std::ptrdiff_t>(at));
    order.insert(order.begin() + static_cast<std::ptrdiff_t>(last), c);  // right after `last`
  }
  std::vector<size_t> flat;
  for (size_t u : order) {
    std::vector<size_t> inside = units[u].readings;
    std::stable_sort(inside.begin(), inside.end(),
                     [&](size_t a, size_t b) { return readings[a].rank < readings[b].rank; });
    flat.insert(flat.end(), inside.begin(), inside.end());
  }
  return flat;
}

Series& ExplosionLocalizer::State::series_for(const GradientReading& reading) {
  const SeriesKey key{reading.layer, reading.tensor};
  auto [it, inserted] = series_index.try_emplace(key, series.size());
  if (inserted) {
    series.emplace_back();
    series.back().layer = reading.layer;
    series.back().tensor = reading.tensor;
  }
  return series[it->second];
}

// Compares the reading with its series' history, then (unflagged and finite) adds it.
std::optional<LayerFlag> ExplosionLocalizer::State::judge(const GradientReading& reading,
                                                          int64_t index, int64_t step,
                                                          const LocalizerOptions& options) {
  Series& s = series_for(reading);
  ++s.observations;
  LayerFlag flag;
  flag.step = step;
  flag.layer = reading.layer;
  flag.tensor = reading.tensor;
  flag.backward_index = index;
  if (!s.history.empty()) flag.median = median_of(s.history);
  if (reading.nonfinite) {
    s.step_norm = kInf;
    ++s.nonfinite_steps;
    ++s.flags;
    flag.reason = FlagReason::NonFinite;
    flag.norm = kInf;
    return flag;
  }
  if (!reading.norm) return std::nullopt;  // a nonfinite probe alone: finite, nothing to compare
  const double norm = *reading.norm;
  s.step_norm = norm;
  s.last = norm;
  s.max = std::isnan(s.max) ? norm : std::max(s.max, norm);
  const bool enough = static_cast<int64_t>(s.history.size()) >= options.min_history;
  if (enough && norm > options.factor * *flag.median) {
    ++s.flags;
    flag.reason = FlagReason::Explosion;
    flag.norm = norm;
    return flag;
  }
  s.history.push_back(norm);
  if (static_cast<int64_t>(s.history.size()) > options.window) s.history.pop_front();
  return std::nullopt;
}

// grad_input/grad_output of each module firing whose two norms are finite, grad_output > 0.
void ExplosionLocalizer::State::record_ratios() {
  std::map<std::string, std::pair<const GradientReading*, const GradientReading*>> firings;
  for (const GradientReading& reading : readings) {
    if (reading.rank == Rank::GradOutput) firings[reading.unit].first = &reading;
    if (reading.rank == Rank::GradInput) firings[reading.unit].second = &reading;
  }
  for (const auto& [unit, pair] : firings) {
    const auto [output, input] = pair;
    if (!output || !input || !output->norm || !input->norm || *output->norm <= 0) continue;
    const double ratio = *input->norm / *output->norm;
    for (const GradientReading* reading : {output, input}) {
      Series& s = series_for(*reading);
      s.step_ratio = ratio;
      s.ratio_sum += ratio;
      ++s.ratio_count;
    }
  }
}

// Forward: the first output (in arrival order, so children before their containers) that is
// non-finite while its input was not; without one, the values came in with the batch.
std::optional<NonFiniteOrigin> ExplosionLocalizer::State::forward_origin() const {
  const bool any_output = std::any_of(forward_outputs.begin(), forward_outputs.end(),
                                      [](const ForwardOutput& out) { return out.nonfinite; });
  const bool any_input = std::any_of(forward_inputs.begin(), forward_inputs.end(),
                                     [](const auto& input) { return input.second; });
  if (!any_output && !any_input) return std::nullopt;
  NonFiniteOrigin origin{"input", "", {}};
  bool found = false;
  for (const ForwardOutput& out : forward_outputs) {
    if (!out.nonfinite) continue;
    const auto input = forward_inputs.find(out.name);
    const bool input_nonfinite = input != forward_inputs.end() && input->second;
    if (!found && !input_nonfinite) {
      found = true;
      origin.phase = "forward";
      origin.producer = out.name;
    } else {
      origin.propagators.push_back(out.name);
    }
  }
  return origin;
}

// Backward: the first grad_input or parameter grad in backward order that is non-finite while
// its module's grad_output was not.
std::optional<NonFiniteOrigin> ExplosionLocalizer::State::gradient_origin(
    const std::vector<size_t>& order) const {
  std::set<std::string> nonfinite_outputs;
  bool any = false;
  for (const GradientReading& reading : readings) {
    any = any || reading.nonfinite;
    if (reading.nonfinite && reading.rank == Rank::GradOutput)
      nonfinite_outputs.insert(reading.unit);
  }
  if (!any) return std::nullopt;
  NonFiniteOrigin origin{"backward", "", {}};
  for (size_t k : order) {
    const GradientReading& reading = readings[k];
    if (!reading.nonfinite || reading.rank == Rank::GradOutput) continue;
    if (nonfinite_outputs.count(reading.unit) > 0) continue;
    origin.producer = reading.rank == Rank::Param ? reading.layer : reading.unit;
    origin.propagators = gradient_propagators(order, &reading.unit);
    return origin;
  }
  origin.propagators = gradient_propagators(order, nullptr);
  return origin;
}

// Module firings with a non-finite grad_output or grad_input in backward order, each once, leaving
// out the producer's own firing (none: nullptr).
std::vector<std::string> ExplosionLocalizer::State::gradient_propagators(
    const std::vector<size_t>& order, const std::string* producer_unit) const {
  std::vector<std::string> names;
  for (size_t k : order) {
    const GradientReading& reading = readings[k];
    if (!reading.nonfinite || reading.rank == Rank::Param) continue;
    if (producer_unit && reading.unit == *producer_unit) continue;
    if (std::find(names.begin(), names.end(), reading.unit) == names.end())
      names.push_back(reading.unit);
  }
  return names;
}

void ExplosionLocalizer::State::close(int64_t step) {
  last_finished = step;
  open_step.reset();
  readings.clear();
  reading_index.clear();
  forward_inputs.clear();
  forward_outputs.clear();
  forward_output_index.clear();
  loss.reset();
}

// ---- public ----------------------------------------------------------------------------------

std::string flag_reason_name(FlagReason reason) {
  switch (reason) {
    case FlagReason::Explosion:
      return "explosion";
    case FlagReason::NonFinite:
      return "nonfinite";
  }
  throw Error("flag_reason_name: unknown reason");
}

const LayerFlag* StepVerdict::first() const { return flags.empty() ? nullptr : &flags.front(); }

ExplosionLocalizer::ExplosionLocalizer(LocalizerOptions options)
    : options_(options), state_(std::make_unique<State>()) {
  check_options(options_);
}
ExplosionLocalizer::~ExplosionLocalizer() = default;
ExplosionLocalizer::ExplosionLocalizer(ExplosionLocalizer&&) noexcept = default;
ExplosionLocalizer& ExplosionLocalizer::operator=(ExplosionLocalizer&&) noexcept = default;

void ExplosionLocalizer::observe(const ProbeRecord& record) {
  const bool gradient =
      (record.when == HookWhen::Backward &&
       (record.tensor == "grad_input" || record.tensor == "grad_output")) ||
      (record.when == HookWhen::Grad && record.tensor == "grad" && !record.param.empty());
  const bool forward = (record.when == HookWhen::ForwardPre && record.tensor == "input") ||
                       (record.when == HookWhen::Forward && record.tensor == "output");
  if (!gradient && !forward) return;
  const Reading reading = read(record);
  if (!reading.informative) return;
  state_->open(record.step);
  if (gradient)
    state_->add_gradient(record, reading);
  else
    state_->add_forward(record, reading);
}

void ExplosionLocalizer::observe_loss(int64_t step, double loss) {
  state_->open(step);
  // Called twice, a non-finite loss is kept: it is the one that explains the step.
  if (!state_->loss || std::isfinite(*state_->loss)) state_->loss = loss;
}

StepVerdict ExplosionLocalizer::finish_step(int64_t step) {
  State& s = *state_;
  s.open(step);  // checks the order of steps; a step without records is fine
  for (Series& series : s.series) series.step_norm = series.step_ratio = kNaN;
  StepVerdict verdict;
  verdict.step = step;
  const std::vector<size_t> order = s.backward_order();
  for (size_t i = 0; i < order.size(); ++i) {
    auto flag = s.judge(s.readings[order[i]], static_cast<int64_t>(i), step, options_);
    if (flag) verdict.flags.push_back(std::move(*flag));
  }
  s.record_ratios();
  verdict.origin = s.forward_origin();
  if (!verdict.origin && s.loss && !std::isfinite(*s.loss))
    verdict.origin = NonFiniteOrigin{"loss", "", s.gradient_propagators(order, nullptr)};
  if (!verdict.origin) verdict.origin = s.gradient_origin(order);
  s.close(step);
  return verdict;
}

std::optional<double> ExplosionLocalizer::clip_threshold(const std::string& layer,
                                                         const std::string& tensor) const {
  const auto it = state_->series_index.find({layer, tensor});
  if (it == state_->series_index.end()) return std::nullopt;
  const Series& s = state_->series[it->second];
  if (static_cast<int64_t>(s.history.size()) < options_.min_history) return std::nullopt;
  return options_.factor * median_of(s.history);
}

std::vector<LayerGradientSummary> ExplosionLocalizer::summaries() const {
  std::vector<LayerGradientSummary> out;
  out.reserve(state_->series.size());
  for (const Series& s : state_->series) {
    LayerGradientSummary summary;
    summary.layer = s.layer;
    summary.tensor = s.tensor;
    summary.observations = s.observations;
    summary.last = s.last;
    summary.median = s.history.empty() ? kNaN : median_of(s.history);
    summary.max = s.max;
    if (s.ratio_count > 0) summary.mean_ratio = s.ratio_sum / static_cast<double>(s.ratio_count);
    summary.flags = s.flags;
    summary.nonfinite_steps = s.nonfinite_steps;
    summary.step_norm = s.step_norm;
    summary.step_ratio = s.step_ratio;
    out.push_back(std::move(summary));
  }
  return out;
}

}  // namespace hookrt
