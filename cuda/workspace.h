#pragma once
// One device scratch buffer shared by every cuDNN call of a backend: sized to the largest request
// seen so far and kept, so a steady-state step allocates nothing. Stream-ordered like every other
// allocation, so growing it while earlier work still reads the old block is safe.
#include <cstddef>
#include <memory>

#include "memory_pool.h"

namespace hookrt::cuda {

class Workspace {
 public:
  explicit Workspace(DeviceMemoryPool& pool) : pool_(pool) {}
  // At least `bytes` of scratch for work queued on the pool's stream next (null when bytes is 0).
  void* reserve(size_t bytes);
  size_t size() const { return block_ ? block_->bytes : 0; }

 private:
  DeviceMemoryPool& pool_;
  std::shared_ptr<Storage> block_;
};

}  // namespace hookrt::cuda
