#pragma once
// Progress of a long run on stderr: a bar redrawn in place on a terminal (step, loss, images/s,
// flagged layers, ETA), plain lines every so often when stderr is a file or a pipe.
#include <chrono>
#include <cstdint>
#include <string>

#include "hookrt/trainer.h"

namespace hookrt::cli {

class Progress {
 public:
  explicit Progress(bool enabled);
  void update(const StepProgress& progress);
  // A line of its own (a warning, a policy action), printed above the bar.
  void message(const std::string& line);
  void finish();  // ends the bar's line

 private:
  std::string line(const StepProgress& progress) const;
  bool enabled_;
  bool terminal_;
  bool bar_shown_ = false;
  int64_t first_step_ = -1;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_plain_;
};

}  // namespace hookrt::cli
