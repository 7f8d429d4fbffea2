#include "cli/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <sstream>

namespace hookrt::cli {

namespace {

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream text;
  if (total >= 3600) text << total / 3600 << "h";
  if (total >= 60) text << (total / 60) % 60 << "m";
  text << total % 60 << "s";
  return text.str();
}

}  // namespace

Progress::Progress(bool enabled) : enabled_(enabled), terminal_(isatty(STDERR_FILENO) == 1) {
  started_ = last_plain_ = std::chrono::steady_clock::now();
}

std::string Progress::line(const StepProgress& p) const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const int64_t done_here = p.step - first_step_ + 1;
  const double eta = done_here > 0 ? elapsed / done_here * static_cast<double>(p.total_steps - p.step) : NAN;
  std::ostringstream text;
  text.precision(4);
  // Steps done out of the total; messages name a step by its index, as stats.jsonl does.
  text << p.step << "/" << p.total_steps << " steps  loss " << p.loss << "  lr " << p.lr << "  "
       << static_cast<int64_t>(p.images_per_second) << " img/s  flagged " << p.flagged_layers << "  ETA "
       << duration(eta);
  return text.str();
}

void Progress::update(const StepProgress& p) {
  if (!enabled_) return;
  if (first_step_ < 0) first_step_ = p.step;
  if (!terminal_) {
    // Plain lines: the first, the last, any step with flags, and otherwise one every few seconds.
    const auto now = std::chrono::steady_clock::now();
    const bool due = std::chrono::duration<double>(now - last_plain_).count() >= 5.0;
    if (p.step == first_step_ || p.step == p.total_steps || p.flagged_layers > 0 || due) {
      std::fprintf(stderr, "%s\n", line(p).c_str());
      last_plain_ = now;
    }
    return;
  }
  constexpr int kWidth = 24;
  const int filled = p.total_steps > 0 ? static_cast<int>(kWidth * p.step / p.total_steps) : 0;
  const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  std::fprintf(stderr, "\r\033[K[%s] %s", bar.c_str(), line(p).c_str());
  std::fflush(stderr);
  bar_shown_ = true;
}

void Progress::message(const std::string& text) {
  if (!enabled_) return;
  if (bar_shown_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", text.c_str());
  bar_shown_ = false;
}

void Progress::finish() {
  if (enabled_ && bar_shown_) std::fprintf(stderr, "\n");
  bar_shown_ = false;
}

}  // namespace hookrt::cli
