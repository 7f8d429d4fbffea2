#pragma once
// ExplosionLocalizer — finds where a gradient explosion or a NaN/Inf starts. Fed the probe records
// of each training step (stats on backward and grad events, stats and nonfinite on forward ones),
// it keeps every gradient series' norms, flags a series whose norm jumps above K x its running
// median or turns non-finite, names the first flagged layer in backward order, and tells the
// module that produced non-finite values from the ones that only passed them on.
//
// Decisions a reader of the report relies on:
// - Flagged values stay out of the running median. The median then describes the healthy steps,
//   so an explosion that persists stays flagged on every step until the norm falls back under
//   K x that baseline, and clip_threshold() after a flagged step is still the bound the flag was
//   judged against (what a clip policy should clip to). Gradual drift is still followed, because
//   every unflagged value enters. The price: a deliberate lasting jump by more than K keeps being
//   flagged; raise K for such runs. Non-finite values never enter the median either.
// - Backward order is the order gradients flow, built from the order records arrive:
//   * within one module firing, grad_output (what arrived) comes before grad_input (what the
//     module passed on), then its parameters' grads, although the dispatcher delivers grad_input
//     first and parameter grads before both;
//   * a container (a module with hooked modules below it: the root "", `layer1`, `layer1.0`) comes
//     right after the last of its descendants. Its grad_output is the same tensor as a child's, so
//     the leaf that holds it is the one named; this also moves the root, whose backward hook fires
//     before any other (its input needs no gradient), to the end.
//   A series keeps one position per step; nothing else ties.
// - For non-finite values the same rule holds in forward: a container's output record arrives after
//   its children's, so the producer named is the innermost module that turned finite into
//   non-finite; a container is named only when the non-finite values arose in its own code (a
//   block's residual add), i.e. none of its children produced them.
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hookrt/records.h"

namespace hookrt {

// How eagerly the localizer flags. The constructor throws Error(BadInput) naming a bad field.
struct LocalizerOptions {
  double factor = 10.0;     // K: flag when norm > K x running median (finite, > 0)
  int64_t window = 50;      // running median over the last `window` unflagged finite norms (>= 1)
  int64_t min_history = 5;  // no explosion flag until a series has this many values (1..window)
};

// Why a series was flagged.
enum class FlagReason { Explosion, NonFinite };
std::string flag_reason_name(FlagReason reason);  // "explosion", "nonfinite"

// One flagged series in one step. A series is a (layer, tensor): a module firing's grad_output or
// grad_input, or a parameter's grad (layer = parameter key, tensor = "grad").
struct LayerFlag {
  int64_t step = 0;
  std::string layer;   // "layer3.1.conv2", "layer1.0.relu#1", or a parameter key
  std::string tensor;  // "grad_output", "grad_input", "grad"
  FlagReason reason = FlagReason::Explosion;
  double norm = 0;               // L2 over the tensor (+inf when it holds NaN/Inf)
  std::optional<double> median;  // the running median it was compared with (none: no history)
  int64_t backward_index = 0;    // position of the series in this step's backward order
};

// Where non-finite values came from in a step.
struct NonFiniteOrigin {
  // "forward", "backward", "loss" (forward finite, loss not), or "input": non-finite values were
  // in forward but no hooked module turned a finite input into them (they came with the batch).
  std::string phase;
  // First module whose output (forward) or grad_input (backward) is non-finite while its input
  // (grad_output) was finite, with #k for a repeated call; in backward, a parameter key when a
  // parameter's grad is the first non-finite gradient of a module whose grad_output was finite.
  // "" for phases "loss" and "input", and in backward when the gradient already arrived
  // non-finite at the first hooked module ("" is also the root's path: with phase "forward" or
  // "backward" and a root hook, a "" producer is the root's own code).
  std::string producer;
  // The other modules that held non-finite values (forward: output; backward: grad_output or
  // grad_input), each once, in firing order (forward) or backward order. Most come after the
  // producer; a module inside a producing container (a block's relu#1 after its residual add)
  // comes before it.
  std::vector<std::string> propagators;
};

// What finish_step() concludes about one step.
struct StepVerdict {
  int64_t step = 0;
  std::vector<LayerFlag> flags;           // in backward order
  std::optional<NonFiniteOrigin> origin;  // when anything in the step was non-finite
  bool flagged() const { return !flags.empty() || origin.has_value(); }
  const LayerFlag* first() const;  // the first flag in backward order, or nullptr
};

// One series over the steps so far, for the CSV, the heatmap and the report. Norm statistics are
// over finite norms (NaN where there are none).
struct LayerGradientSummary {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  std::string layer;         // module path (with #k) or parameter key
  std::string tensor;        // grad_output / grad_input / grad
  int64_t observations = 0;  // steps that delivered this series, finite or not
  double last = kNaN;        // the latest finite norm
  double median = kNaN;      // the running median (flagged values excluded, as above)
  double max = kNaN;         // the largest finite norm, flagged ones included
  // Mean over steps of grad_input/grad_output of the series' module firing, where both are finite
  // and grad_output > 0; on both of a module's series, NaN on parameter grads.
  double mean_ratio = kNaN;
  int64_t flags = 0;            // steps on which the series was flagged (either reason)
  int64_t nonfinite_steps = 0;  // steps on which it held NaN or Inf
  // The last finished step's value: its norm, +inf when non-finite, NaN when the series was not
  // delivered in that step; and that step's grad_input/grad_output ratio (as mean_ratio).
  double step_norm = kNaN;
  double step_ratio = kNaN;
};

// Feeds on one step's records at a time; call observe() for each record (in firing order),
// observe_loss() once, then finish_step(). Not thread-safe: feed it from one thread.
class ExplosionLocalizer {
 public:
  explicit ExplosionLocalizer(LocalizerOptions options = {});
  ~ExplosionLocalizer();
  ExplosionLocalizer(ExplosionLocalizer&&) noexcept;
  ExplosionLocalizer& operator=(ExplosionLocalizer&&) noexcept;

  // Any record of the current step. Uses forward_pre "input", forward "output", backward
  // "grad_input"/"grad_output" and grad "grad" records that carry a stats or nonfinite result;
  // ignores the rest. Throws Error if the record belongs to another step than the open one, or to
  // a step already finished.
  void observe(const ProbeRecord& record);
  // The step's loss; a non-finite loss after a finite forward is a "loss" origin.
  void observe_loss(int64_t step, double loss);
  // Closes the step: compares this step's norms with each series' running median (the current
  // value is not part of its own median), then adds the unflagged finite ones to the history.
  // Call once per step, after every record of it, with increasing steps; throws Error otherwise.
  StepVerdict finish_step(int64_t step);

  // K x the series' running median (what the clip policy clips a flagged parameter grad to);
  // nullopt before min_history values, or for a series never seen.
  std::optional<double> clip_threshold(const std::string& layer, const std::string& tensor) const;
  // Every series, in backward order of first appearance; step_norm is the last finished step's
  // grad_output norm per module and grad norm per parameter (the heatmap's row).
  std::vector<LayerGradientSummary> summaries() const;
  const LocalizerOptions& options() const { return options_; }

 private:
  struct State;
  LocalizerOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace hookrt
