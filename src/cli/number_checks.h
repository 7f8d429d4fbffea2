#pragma once
// Checks for the numeric options, run on the text before CLI11 converts it, with messages that say
// what the option takes: "--batch: must be a whole number, at least 1; got 0", where CLI11's own
// range checks print their bounds as 300-digit doubles and let "nan" through (NaN compares false
// with every bound, so a NaN learning rate passed NonNegativeNumber and trained to NaN weights).
#include <cstdint>

#include <CLI/CLI.hpp>

namespace hookrt::cli {

// A whole number of at least `least`: counts (1), and counts that may be zero (0).
CLI::Validator whole_at_least(int64_t least);

// A finite real number >= 0: learning rates, momentum, dampening, weight decay.
CLI::Validator finite_non_negative();

// A finite real number > 0: factors.
CLI::Validator finite_positive();

}  // namespace hookrt::cli
