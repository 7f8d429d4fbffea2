#include "cli/loss_scale_option.h"

namespace hookrt::cli {

void add_loss_scale_option(CLI::App& cmd, std::string& scaling) {
  cmd.add_option("--loss-scale", scaling,
                 "auto (dynamic for fp16, else off), off, dynamic (torch.amp.GradScaler: 65536, halved "
                 "and the update skipped on an overflow, doubled after 2000 good steps), or a number: a "
                 "static scale");
}

std::optional<LossScalingOptions> loss_scaling_choice(const std::string& scaling) {
  if (scaling == "auto") return std::nullopt;
  return parse_loss_scaling(scaling);
}

}  // namespace hookrt::cli
