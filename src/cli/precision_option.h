#pragma once
// `--precision fp32|bf16|fp16`, declared once for every command that runs the model (`run`,
// `train`, `bench`): bf16 and fp16 run it as torch.autocast(dtype=torch.bfloat16 or float16) would
// (see hookrt::Precision), on either device.
#include <string>

#include <CLI/CLI.hpp>

namespace hookrt::cli {

// Adds the option to `cmd`, writing "fp32", "bf16" or "fp16" into `precision` (which must outlive the parse).
void add_precision_option(CLI::App& cmd, std::string& precision);

}  // namespace hookrt::cli
