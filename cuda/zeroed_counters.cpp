// ZeroedCounters (see zeroed_counters.h).
#include "zeroed_counters.h"

#include <algorithm>

#include "status.h"

namespace hookrt::cuda {
namespace {

// 32 KiB: the counters of a flat pass with zeros on 2048 channels and a 1024-bin histogram.
constexpr size_t kFirstWords = 4096;

}  // namespace

unsigned long long* ZeroedCounters::words(size_t count) {
  if (count == 0) return nullptr;
  if (count > capacity_) {
    pool_.refuse_growth_while_recording("the probes' counters");
    const size_t capacity = std::max({count, kFirstWords, 2 * capacity_});
    const size_t bytes = capacity * sizeof(unsigned long long);
    storage_ = pool_.allocate_bytes(bytes);  // the old block is freed after the work queued on it
    HOOKRT_CUDA_CHECK(cudaMemsetAsync(storage_->data, 0, bytes, pool_.stream()));
    capacity_ = capacity;
  }
  return static_cast<unsigned long long*>(storage_->data);
}

}  // namespace hookrt::cuda
