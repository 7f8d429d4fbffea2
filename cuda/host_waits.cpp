#include "host_waits.h"

#include <atomic>

namespace hookrt::cuda {
namespace {
std::atomic<uint64_t> waits{0};
thread_local uint64_t waits_on_this_thread = 0;
}  // namespace

void count_host_wait() {
  waits.fetch_add(1, std::memory_order_relaxed);
  ++waits_on_this_thread;
}
uint64_t host_waits() { return waits.load(std::memory_order_relaxed); }
uint64_t host_waits_on_this_thread() { return waits_on_this_thread; }

}  // namespace hookrt::cuda
