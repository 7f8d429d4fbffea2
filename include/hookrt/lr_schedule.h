#pragma once
// LrSchedule — the learning rate of every optimizer step, as PyTorch's schedulers stepped once per
// iteration compute it: StepLR or CosineAnnealingLR, after an optional LinearLR warmup, times any
// spikes (a factor over a range of steps, for provoking an explosion on purpose).
#include <cstdint>
#include <string>
#include <vector>

namespace hookrt {

enum class LrDecay { Constant, Step, Cosine };

struct LrSpike {
  int64_t start = 0;   // first step multiplied
  int64_t length = 1;  // steps multiplied
  double factor = 1;
};

struct LrSchedule {
  double base_lr = 0.01;
  LrDecay decay = LrDecay::Constant;
  int64_t step_size = 30;  // Step: lr x gamma every step_size steps (StepLR)
  double gamma = 0.1;
  int64_t total_steps = 0;  // Cosine: T_max, from the warmup's end to the last step
  double min_lr = 0;        // Cosine: eta_min
  int64_t warmup_steps = 0;  // LinearLR from warmup_start_factor to 1 over these steps
  double warmup_start_factor = 0.1;
  std::vector<LrSpike> spikes;

  // The learning rate of step `step` (0-based).
  double at(int64_t step) const;
  // Throws Error(BadInput) naming the field on a value no scheduler accepts.
  void validate() const;
};

LrDecay parse_lr_decay(const std::string& text);  // "constant" | "step" | "cosine"
std::string lr_decay_name(LrDecay decay);
// `STEP:FACTOR` or `STEP:FACTOR:LENGTH`; throws Error(BadInput) naming the text.
LrSpike parse_lr_spike(const std::string& text);

}  // namespace hookrt
