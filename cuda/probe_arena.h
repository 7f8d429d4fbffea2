#pragma once
// ProbeArena — the device results arena of one step: every deferred probe run gets its slot (an
// array of doubles, see src/probe_plan.h) carved out of it in queue order, and seal() moves all of
// them to pinned host memory with one cudaMemcpyAsync and returns without waiting. The compute
// stream never waits for the host, and the host thread that drives the device never waits for
// the results: whoever holds the step's Landing (the executor's delivery thread) does.
//
// A step that needs more than the arena holds continues in a further block (slots already handed
// out keep their addresses); seal() then merges the blocks into one of the total size for the
// next step, so a steady-state step uses one block, one copy and no allocation. The device block
// is reused by the next step at once: stream order puts its kernels after the copy.
//
// The host side is a few pinned buffers, one per step in flight. A buffer returns to the arena
// when its Landing is destroyed; seal() waits for one only when every buffer is still held, so
// a delivery that falls behind slows the step down rather than losing results.
#include <cstdint>
#include <memory>
#include <vector>

#include "memory_pool.h"
#include "resources.h"

namespace hookrt::cuda {

class ProbeArena {
 public:
  // Steps whose results may be on their way to, or held on, the host at once: the step being
  // sealed, and up to three that the executor's delivery thread holds (one it delivers, two queued).
  static constexpr int kHostBuffers = 4;

  ProbeArena(DeviceMemoryPool& pool, std::shared_ptr<CudaStream> stream);
  ~ProbeArena();
  ProbeArena(const ProbeArena&) = delete;
  ProbeArena& operator=(const ProbeArena&) = delete;

  struct Slot {
    double* device = nullptr;  // where the kernels write (`doubles` entries)
    int64_t offset = 0;        // where the Landing's host copy holds them
  };
  // A slot of `doubles` entries for a probe run queued next on the stream.
  Slot reserve(int64_t doubles);

  struct HostBuffers;
  // One step's entries on their way to a pinned host buffer, which it holds until destroyed.
  class Landing {
   public:
    Landing(std::shared_ptr<HostBuffers> buffers, int index) : buffers_(std::move(buffers)), index_(index) {}
    ~Landing();  // hands the buffer back, after the copy has landed
    Landing(const Landing&) = delete;
    Landing& operator=(const Landing&) = delete;
    // Waits for the copy (on any thread); the entries stay valid while the Landing lives.
    const double* wait();

   private:
    std::shared_ptr<HostBuffers> buffers_;
    int index_;
    bool landed_ = false;
  };
  // Queues the copy of every slot reserved since the last seal and empties the arena.
  std::unique_ptr<Landing> seal();

  // Entries reserved since the last seal.
  int64_t reserved() const { return reserved_; }
  // Empties the arena without copying anything (the slots of a recording that ended or failed).
  void drop_reservations() { reset_blocks(); }
  // Reserves the first `doubles` entries again, as the recorded step did that a replay has just
  // written (its slots lie in the arena's one block, which recording could not grow).
  void reserve_as_recorded(int64_t doubles);

 private:
  struct Block {
    Tensor device;        // F64
    int64_t start = 0;    // offset of its first entry in the step's numbering
    int64_t used = 0;
  };
  void add_block(int64_t doubles);
  void queue_copies(double* host);
  void reset_blocks();

  DeviceMemoryPool& pool_;
  std::shared_ptr<CudaStream> stream_;
  std::shared_ptr<HostBuffers> host_;
  std::vector<Block> blocks_;
  int64_t reserved_ = 0;  // entries reserved this step, over all blocks
};

}  // namespace hookrt::cuda
