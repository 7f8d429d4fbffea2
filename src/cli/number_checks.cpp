#include "cli/number_checks.h"

#include <cmath>
#include <optional>
#include <string>

#include "number_text.h"

namespace hookrt::cli {

namespace {

// A validator that accepts the text when `accepts` says so, and otherwise says what it takes.
template <class Accepts>
CLI::Validator validator(const std::string& takes, Accepts accepts) {
  return CLI::Validator(
      [takes, accepts](std::string& text) -> std::string {
        return accepts(text) ? std::string() : "must be " + takes + "; got " + text;
      },
      takes);
}

}  // namespace

CLI::Validator whole_at_least(int64_t least) {
  return validator("a whole number, at least " + std::to_string(least), [least](const std::string& text) {
    const std::optional<int64_t> value = parse_whole_int64(text);
    return value && *value >= least;
  });
}

CLI::Validator finite_non_negative() {
  return validator("a finite number >= 0", [](const std::string& text) {
    const std::optional<double> value = parse_whole_double(text);
    return value && std::isfinite(*value) && *value >= 0;
  });
}

CLI::Validator finite_positive() {
  return validator("a finite number > 0", [](const std::string& text) {
    const std::optional<double> value = parse_whole_double(text);
    return value && std::isfinite(*value) && *value > 0;
  });
}

}  // namespace hookrt::cli
