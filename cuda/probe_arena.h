#pragma once
// ProbeArena — the device results arena of one step: every deferred probe run gets its slot (an
// array of doubles, see src/probe_plan.h) carved out of it in queue order, and collect() moves all
// of them to pinned host memory with one cudaMemcpyAsync, then waits once. The compute stream
// never waits for the host between probe runs.
//
// A step that needs more than the arena holds continues in a further block (slots already handed
// out keep their addresses); collect() then merges the blocks into one of the total size for the
// next step, so a steady-state step uses one block, one copy and no allocation.
#include <cstdint>
#include <memory>
#include <vector>

#include "memory_pool.h"
#include "resources.h"

namespace hookrt::cuda {

class ProbeArena {
 public:
  ProbeArena(DeviceMemoryPool& pool, std::shared_ptr<CudaStream> stream);
  ~ProbeArena();
  ProbeArena(const ProbeArena&) = delete;
  ProbeArena& operator=(const ProbeArena&) = delete;

  struct Slot {
    double* device = nullptr;  // where the kernels write (`doubles` entries)
    int64_t offset = 0;        // where collect()'s host copy holds them
  };
  // A slot of `doubles` entries for a probe run queued next on the stream.
  Slot reserve(int64_t doubles);
  // Copies every slot reserved since the last collect to the host and waits for the copy. The
  // returned entries stay valid until the next collect(); the arena is empty again afterwards.
  const double* collect();
  int64_t reserved() const { return reserved_; }

 private:
  struct Block {
    Tensor device;        // F64
    int64_t start = 0;    // offset of its first entry in the step's numbering
    int64_t used = 0;
  };
  void add_block(int64_t doubles);
  void ensure_host_capacity(int64_t doubles);

  DeviceMemoryPool& pool_;
  std::shared_ptr<CudaStream> stream_;
  CudaEvent landed_;                // recorded after the copy to the host
  std::vector<Block> blocks_;
  int64_t reserved_ = 0;            // entries reserved this step, over all blocks
  double* host_ = nullptr;          // pinned, host_capacity_ entries
  int64_t host_capacity_ = 0;
};

}  // namespace hookrt::cuda
