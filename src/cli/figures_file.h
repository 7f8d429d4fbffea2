#pragma once
// FiguresFile — a command's JSON figures file kept current as the figures arrive, so that a run
// stopped early keeps what it measured. A regular file (or a new one) is rewritten whole after
// each figure, through a temporary file and a rename, so a reader never sees half of it; a
// symlink's target is rewritten in its place. Anything else (a terminal, a pipe, /dev/stdout) is
// written once, when the run ends or stops, since rewriting it would append a second document.
#include <string>

#include <nlohmann/json.hpp>

namespace hookrt::cli {

class FiguresFile {
 public:
  // `option` names the flag the path came from, for errors ("--json").
  FiguresFile(std::string path, std::string option);

  // Before the run spends its time: the figures so far are written (a file that takes no
  // rewrites is opened and left as it is). Error(BadInput) naming the option and the path where
  // that fails.
  void start(const nlohmann::ordered_json& figures) const;
  // A figure arrived: rewritten where the file takes rewrites.
  void update(const nlohmann::ordered_json& figures) const;
  // The run ended or stopped: written, whatever the file.
  void finish(const nlohmann::ordered_json& figures) const;

 private:
  void write(const nlohmann::ordered_json& figures) const;

  std::string path_;    // where the figures go: the option's path, or its symlink's target
  std::string option_;
  bool rewritable_;
};

}  // namespace hookrt::cli
