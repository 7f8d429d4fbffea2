#pragma once
// `--loss-scale auto|off|dynamic|S`, declared once for every command that trains (`run --mode
// train`, `train`, `bench`): how a training step scales its loss (see ExecutorOptions::
// loss_scaling). auto is dynamic for fp16, as torch.amp.GradScaler's recipe, and off otherwise.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "hookrt/executor.h"

namespace hookrt::cli {

// Adds the option to `cmd`, writing the choice into `scaling` (which must outlive the parse).
void add_loss_scale_option(CLI::App& cmd, std::string& scaling);
// The choice as ExecutorOptions::loss_scaling takes it: unset for "auto"; throws Error(BadInput).
std::optional<LossScalingOptions> loss_scaling_choice(const std::string& scaling);

}  // namespace hookrt::cli
