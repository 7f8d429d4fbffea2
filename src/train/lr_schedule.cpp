#include "hookrt/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>

#include "hookrt/error.h"
#include "number_text.h"

namespace hookrt {

namespace {

double warmup_factor(const LrSchedule& s, int64_t step) {
  if (step >= s.warmup_steps) return 1.0;
  // LinearLR: start_factor + (1 - start_factor) * step / total_iters.
  return s.warmup_start_factor +
         (1.0 - s.warmup_start_factor) * static_cast<double>(step) / static_cast<double>(s.warmup_steps);
}

double decayed(const LrSchedule& s, int64_t step) {
  switch (s.decay) {
    case LrDecay::Constant: return s.base_lr;
    case LrDecay::Step: return s.base_lr * std::pow(s.gamma, static_cast<double>(step / s.step_size));
    case LrDecay::Cosine: {
      // The cosine runs after the warmup, over the remaining steps (SequentialLR's hand-over).
      const int64_t span = std::max<int64_t>(1, s.total_steps - s.warmup_steps);
      const int64_t t = std::clamp<int64_t>(step - s.warmup_steps, 0, span);
      return s.min_lr + (s.base_lr - s.min_lr) * (1.0 + std::cos(std::numbers::pi * t / span)) / 2.0;
    }
  }
  return s.base_lr;
}

double spike_factor(const LrSchedule& s, int64_t step) {
  double factor = 1.0;
  for (const LrSpike& spike : s.spikes)
    if (step >= spike.start && step < spike.start + spike.length) factor *= spike.factor;
  return factor;
}

double parse_number(const std::string& text, const std::string& whole) {
  const std::optional<double> value = parse_whole_double(text);
  if (!value || !std::isfinite(*value)) throw_bad_input("--lr-spike " + whole + ": '" + text + "' is not a number");
  return *value;
}

}  // namespace

double LrSchedule::at(int64_t step) const { return decayed(*this, step) * warmup_factor(*this, step) * spike_factor(*this, step); }

void LrSchedule::validate() const {
  if (!(base_lr >= 0) || !std::isfinite(base_lr)) throw_bad_input("--lr must be a finite number >= 0");
  if (decay == LrDecay::Step && step_size < 1) throw_bad_input("--step-size must be >= 1");
  if (!(gamma > 0) || !std::isfinite(gamma)) throw_bad_input("--gamma must be a finite number > 0");
  if (!(min_lr >= 0) || min_lr > base_lr) throw_bad_input("--min-lr must be in [0, --lr]");
  if (warmup_steps < 0) throw_bad_input("--warmup must be >= 0");
  if (!(warmup_start_factor > 0 && warmup_start_factor <= 1))
    throw_bad_input("--warmup-start-factor must be in (0, 1] (as torch.optim.lr_scheduler.LinearLR)");
  for (const LrSpike& spike : spikes)
    if (spike.start < 0 || spike.length < 1 || !(spike.factor > 0) || !std::isfinite(spike.factor))
      throw_bad_input("--lr-spike: needs STEP >= 0, LENGTH >= 1 and a finite FACTOR > 0");
}

LrDecay parse_lr_decay(const std::string& text) {
  if (text == "constant") return LrDecay::Constant;
  if (text == "step") return LrDecay::Step;
  if (text == "cosine") return LrDecay::Cosine;
  throw_bad_input("unknown learning-rate schedule '" + text + "' (expected constant, step or cosine)");
}

std::string lr_decay_name(LrDecay decay) {
  switch (decay) {
    case LrDecay::Constant: return "constant";
    case LrDecay::Step: return "step";
    case LrDecay::Cosine: return "cosine";
  }
  return "?";
}

LrSpike parse_lr_spike(const std::string& text) {
  std::vector<std::string> parts;
  size_t begin = 0;
  for (size_t colon; (colon = text.find(':', begin)) != std::string::npos; begin = colon + 1)
    parts.push_back(text.substr(begin, colon - begin));
  parts.push_back(text.substr(begin));
  if (parts.size() < 2 || parts.size() > 3) throw_bad_input("--lr-spike " + text + ": expected STEP:FACTOR[:LENGTH]");
  LrSpike spike;
  const double start = parse_number(parts[0], text);
  spike.factor = parse_number(parts[1], text);
  const double length = parts.size() == 3 ? parse_number(parts[2], text) : 1.0;
  if (start != std::floor(start) || length != std::floor(length))
    throw_bad_input("--lr-spike " + text + ": STEP and LENGTH must be whole numbers");
  spike.start = static_cast<int64_t>(start);
  spike.length = static_cast<int64_t>(length);
  LrSchedule check;
  check.spikes = {spike};
  check.validate();
  return spike;
}

}  // namespace hookrt
