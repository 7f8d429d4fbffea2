#pragma once
// GpuFlags — the switches that say how the CUDA backend computes, declared once for every command
// that picks a device (`run`, `train`, `bench`), so that each spells and explains them alike and a
// GPU run can be made to compute as the CPU reference does (`--no-tf32 --heuristic-conv
// --deterministic`). On the CPU they change nothing.
#include <CLI/CLI.hpp>

#include "hookrt/devices.h"

namespace hookrt::cli {

// Each field turns one of GpuOptions' defaults off (or, for `deterministic` and `own_batchnorm`,
// on); all false is GpuOptions' defaults, PyTorch's.
struct GpuFlags {
  bool no_tf32 = false;
  bool heuristic_conv = false;
  bool deterministic = false;
  bool own_batchnorm = false;
};

// Adds `--no-tf32`, `--heuristic-conv`, `--deterministic` and `--own-batchnorm` to `cmd`, writing
// into `flags` (which must outlive the parse).
void add_gpu_flags(CLI::App& cmd, GpuFlags& flags);

// The backend options the flags ask for, on device 0.
GpuOptions gpu_options(const GpuFlags& flags);

}  // namespace hookrt::cli
