#pragma once
// ZeroedCounters — device words that are zero whenever no kernel is using them: the kernels that
// take them (the fused probes' flat passes) leave them zero when they finish. So they are cleared
// once, when they grow, instead of by a memset before every use: one launch less per probe run.
// Runs on the backend's one stream share them; stream order keeps uses apart.
#include <cstddef>
#include <memory>

#include "memory_pool.h"

namespace hookrt::cuda {

class ZeroedCounters {
 public:
  explicit ZeroedCounters(DeviceMemoryPool& pool) : pool_(pool) {}
  // At least `count` zero words for work queued next on the pool's stream; nullptr for none.
  unsigned long long* words(size_t count);

 private:
  DeviceMemoryPool& pool_;
  std::shared_ptr<Storage> storage_;  // freed in stream order when it grows
  size_t capacity_ = 0;
};

}  // namespace hookrt::cuda
