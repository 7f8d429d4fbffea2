#pragma once
// Counts every time hookrt's CUDA code makes the host wait for the device (a stream or event
// synchronisation), so that tests can hold a steady-state step to its budget of waits: probes
// must not add one per probed tensor.
#include <cstdint>

namespace hookrt::cuda {

void count_host_wait();
uint64_t host_waits();  // since the process started, over all backends and threads
uint64_t host_waits_on_this_thread();  // since this thread started

}  // namespace hookrt::cuda
