#pragma once
// `--memory-format auto|contiguous|channels_last`, declared once for every command that runs the
// model (`run`, `train`, `bench`): the layout of the step's activations and convolution weights
// (see ExecutorOptions::memory_format). Hooks, captures and files see NCHW either way.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "hookrt/tensor.h"

namespace hookrt::cli {

// Adds the option to `cmd`, writing the choice into `format` (which must outlive the parse).
void add_memory_format_option(CLI::App& cmd, std::string& format);
// The choice as ExecutorOptions::memory_format takes it: unset for "auto".
std::optional<MemoryFormat> memory_format_choice(const std::string& format);

}  // namespace hookrt::cli
