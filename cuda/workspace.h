#pragma once
// One device scratch buffer shared by the calls of one kind on a backend's stream (cuDNN's, or the
// probe passes'): sized to the largest request seen so far and kept, so a steady-state step
// allocates nothing, and a step recorded as a graph holds no allocation of its own. Each call's
// scratch lives only until the next call's work, which stream order keeps after it. Stream-ordered
// like every other allocation, so growing it while earlier work still reads the old block is safe.
#include <cstddef>
#include <memory>

#include "memory_pool.h"

namespace hookrt::cuda {

class Workspace {
 public:
  // `what` names it in the error of a growth while a step is recorded ("cuDNN's workspace").
  Workspace(DeviceMemoryPool& pool, const char* what) : pool_(pool), what_(what) {}
  // At least `bytes` of scratch for work queued on the pool's stream next (null when bytes is 0).
  void* reserve(size_t bytes);
  size_t size() const { return block_ ? block_->bytes : 0; }

 private:
  DeviceMemoryPool& pool_;
  const char* what_;
  std::shared_ptr<Storage> block_;
};

}  // namespace hookrt::cuda
