#include "cli/interrupt.h"

#include <atomic>
#include <csignal>

namespace hookrt::cli {

namespace {
// Lock-free, so setting it is async-signal-safe.
std::atomic<bool> requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);
extern "C" void on_interrupt_signal(int) { requested = true; }
}  // namespace

void install_interrupt_handlers() {
  std::signal(SIGINT, on_interrupt_signal);
  std::signal(SIGTERM, on_interrupt_signal);
}

bool interrupt_requested() { return requested.load(); }

}  // namespace hookrt::cli
