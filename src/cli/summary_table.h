#pragma once
// SummaryTable — the readable table `hookrt run` prints: one row per hooked site and tensor with
// the latest statistics seen there.
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "hookrt/records.h"

namespace hookrt::cli {

class SummaryTable {
 public:
  void add(const ProbeRecord& record);
  void print(std::ostream& out) const;
  size_t records() const { return total_; }

 private:
  struct Row {
    std::string event, site, tensor, shape;
    std::vector<ProbeResult> results;
    int64_t firings = 0;
  };
  std::vector<Row> rows_;                 // first-seen order
  std::map<std::string, size_t> index_;  // row key -> position
  size_t total_ = 0;
};

}  // namespace hookrt::cli
