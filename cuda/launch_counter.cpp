// LaunchCounter and the count_launches entry point (see launch_counter.h and cuda_entry.h).
#include "launch_counter.h"

#include <cuda_runtime.h>

#include <atomic>
#include <exception>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <mutex>
#include <new>
#include <string>

#include "hookrt/error.h"
#include "status.h"

#if HOOKRT_WITH_CUPTI
#include <cupti.h>
#endif

namespace hookrt::cuda {

#if HOOKRT_WITH_CUPTI
namespace {

// ---- checked CUPTI calls ------------------------------------------------------------------------

std::string cupti_text(CUptiResult result) {
  const char* text = nullptr;
  if (cuptiGetResultString(result, &text) != CUPTI_SUCCESS || text == nullptr)
    return "CUPTI error " + std::to_string(static_cast<int>(result));
  return text;
}

std::string describe_failure(CUptiResult result, const CallSite& site) {
  return std::string("CUPTI call `") + site.call + "` failed at " + site.file + ":" + std::to_string(site.line) +
         ": " + cupti_text(result);
}

void check_cupti(CUptiResult result, const CallSite& site) {
  if (result != CUPTI_SUCCESS) throw Error(describe_failure(result, site));
}

void log_cupti(CUptiResult result, const CallSite& site) noexcept {
  if (result == CUPTI_SUCCESS) return;
  try {
    std::fprintf(stderr, "hookrt: %s (ignored: it ran during cleanup)\n", describe_failure(result, site).c_str());
  } catch (...) {
    std::fprintf(stderr, "hookrt: CUPTI call `%s` failed during cleanup\n", site.call);
  }
}

#define HOOKRT_CUPTI_CHECK(call) check_cupti((call), CallSite{#call, __FILE__, __LINE__})
#define HOOKRT_CUPTI_LOG(call) log_cupti((call), CallSite{#call, __FILE__, __LINE__})

// The activity kinds counted, with the calls' text for errors that name them.
struct CountedKind {
  CUpti_ActivityKind kind;
  const char* enable_call;
  const char* disable_call;
};
#define HOOKRT_COUNTED_KIND(kind) \
  CountedKind { kind, "cuptiActivityEnable(" #kind ")", "cuptiActivityDisable(" #kind ")" }
// CONCURRENT_KERNEL rather than KERNEL: the latter serializes kernels, changing the step it counts.
const CountedKind kCountedKinds[] = {HOOKRT_COUNTED_KIND(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL),
                                     HOOKRT_COUNTED_KIND(CUPTI_ACTIVITY_KIND_MEMCPY),
                                     HOOKRT_COUNTED_KIND(CUPTI_ACTIVITY_KIND_MEMSET)};
#undef HOOKRT_COUNTED_KIND

// ---- the activity buffers -----------------------------------------------------------------------

// A hooked ResNet18 step queues a few thousand items of a few hundred bytes each: one or two
// buffers; CUPTI asks for another whenever one fills.
constexpr size_t kBufferBytes = size_t{1} << 20;
constexpr std::align_val_t kBufferAlignment{8};  // CUPTI requires 8-byte aligned buffers

// What the buffer callbacks add to. CUPTI calls them on its own threads as well as inside
// cuptiActivityFlushAll, hence the mutex. Never destroyed: CUPTI may hand back a buffer while the
// process exits, after function-local statics are gone.
struct Tally {
  std::mutex mutex;
  bool counting = false;
  LaunchCounts counts;
  DeviceWorkTimes times;
  std::string problem;  // a buffer CUPTI could not walk; stop() reports it
};

Tally& tally() {
  static Tally* const shared = new Tally;
  return *shared;
}

// Claimed by the counter that is counting; the callbacks stay registered once they are.
std::atomic<bool> claimed{false};
bool callbacks_registered = false;  // read and written only by the claiming counter

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(::operator new(kBufferBytes, kBufferAlignment, std::nothrow));
  // A declined request (null) makes CUPTI drop records, which stop() then reports.
  *size = *buffer != nullptr ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

// The device time of a record's item: its end and start are GPU timestamps in nanoseconds.
double record_ms(uint64_t start, uint64_t end) { return end > start ? static_cast<double>(end - start) * 1e-6 : 0.0; }

// The records are the newest versions of their structs, as this build's CUPTI header defines them.
void add_record(const CUpti_Activity& record, LaunchCounts& counts, DeviceWorkTimes& times) {
  switch (record.kind) {
    case CUPTI_ACTIVITY_KIND_KERNEL:
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
      ++counts.kernels;
      const auto& kernel = reinterpret_cast<const CUpti_ActivityKernel10&>(record);
      times.add(kernel.name != nullptr ? kernel_family(kernel.name) : "(unnamed kernel)",
                record_ms(kernel.start, kernel.end));
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
      ++counts.memcpys;
      const auto& memcpy = reinterpret_cast<const CUpti_ActivityMemcpy6&>(record);
      times.add("memcpy", record_ms(memcpy.start, memcpy.end));
      break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
      ++counts.memsets;
      const auto& memset = reinterpret_cast<const CUpti_ActivityMemset4&>(record);
      times.add("memset", record_ms(memset.start, memset.end));
      break;
    }
    default: break;  // no other kind is enabled
  }
}

// What one completed buffer holds, or what went wrong reading it.
struct BufferTally {
  LaunchCounts counts;
  DeviceWorkTimes times;
  std::string problem;
};

BufferTally read_buffer(uint8_t* buffer, size_t valid_bytes) {
  BufferTally read;
  CUpti_Activity* record = nullptr;
  for (;;) {
    const CUptiResult status = cuptiActivityGetNextRecord(buffer, valid_bytes, &record);
    if (status == CUPTI_ERROR_MAX_LIMIT_REACHED) break;  // the end of the buffer
    if (status != CUPTI_SUCCESS) {  // an incomplete or unreadable record: the rest is lost
      read.problem = "CUPTI call `cuptiActivityGetNextRecord(buffer, valid_bytes, &record)` failed while reading "
                     "a completed buffer: " + cupti_text(status);
      break;
    }
    add_record(*record, read.counts, read.times);
  }
  return read;
}

// CUPTI's callback: it must not throw, so a failure (no memory for a kernel's name) becomes the
// problem that stop() reports.
void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid_bytes) {
  BufferTally read;
  try {
    read = read_buffer(buffer, valid_bytes);
  } catch (const std::exception& e) {
    read.problem = std::string("reading a completed CUPTI buffer failed: ") + e.what();
  }
  ::operator delete(buffer, kBufferAlignment);
  Tally& t = tally();
  std::lock_guard<std::mutex> lock(t.mutex);
  if (!t.counting) return;  // nothing is counting: a buffer handed back at exit
  t.counts.kernels += read.counts.kernels;
  t.counts.memcpys += read.counts.memcpys;
  t.counts.memsets += read.counts.memsets;
  try {
    t.times.add(read.times);
  } catch (const std::exception& e) {
    if (read.problem.empty()) read.problem = std::string("adding up the device times failed: ") + e.what();
  }
  if (!read.problem.empty() && t.problem.empty()) t.problem = read.problem + "; the counts would be short";
}

void set_counting(bool counting) {
  Tally& t = tally();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.counting = counting;
  if (counting) {
    t.counts = {};
    t.times = {};
    t.problem.clear();
  }
}

// ---- one count ------------------------------------------------------------------------------------

// Turns the first `enabled` counted kinds off again and hands back every buffer, logging failures:
// for a count that ends in an error, so that the next count starts clean.
void abandon_recording(size_t enabled) noexcept {
  HOOKRT_CUDA_LOG(cudaDeviceSynchronize());  // complete records, so that the flush takes them all
  for (size_t i = 0; i < enabled; ++i)
    log_cupti(cuptiActivityDisable(kCountedKinds[i].kind),
              CallSite{kCountedKinds[i].disable_call, __FILE__, __LINE__});
  if (enabled > 0) HOOKRT_CUPTI_LOG(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
  set_counting(false);
}

void begin_recording() {
  // Work queued earlier finishes first, so that none of it is mistaken for the counted work.
  HOOKRT_CUDA_CHECK(cudaDeviceSynchronize());
  if (!callbacks_registered) {
    HOOKRT_CUPTI_CHECK(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed));
    callbacks_registered = true;
  }
  set_counting(true);
  size_t enabled = 0;
  try {
    for (; enabled < std::size(kCountedKinds); ++enabled)
      check_cupti(cuptiActivityEnable(kCountedKinds[enabled].kind),
                  CallSite{kCountedKinds[enabled].enable_call, __FILE__, __LINE__});
  } catch (...) {
    abandon_recording(enabled);
    throw;
  }
}

LaunchCounts end_recording() {
  // Every counted item completes before its record is final; then no new ones are recorded, and a
  // forced flush hands back every buffer, so that none arrives during a later count.
  HOOKRT_CUDA_CHECK(cudaDeviceSynchronize());
  for (const CountedKind& k : kCountedKinds)
    check_cupti(cuptiActivityDisable(k.kind), CallSite{k.disable_call, __FILE__, __LINE__});
  HOOKRT_CUPTI_CHECK(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED));
  size_t dropped = 0;  // reading it also resets it for the next count
  HOOKRT_CUPTI_CHECK(cuptiActivityGetNumDroppedRecords(nullptr, 0, &dropped));
  Tally& t = tally();
  std::lock_guard<std::mutex> lock(t.mutex);
  if (!t.problem.empty()) throw Error("LaunchCounter::stop: " + t.problem);
  if (dropped > 0)
    throw Error("LaunchCounter::stop: CUPTI dropped " + std::to_string(dropped) +
                " activity records (no buffer was available for them); the counts would be short");
  LaunchCounts counts = t.counts;
  counts.times = t.times.by_time();
  return counts;
}

}  // namespace

void LaunchCounter::start() {
  HOOKRT_CHECK(!counting_, "LaunchCounter::start: this counter is already counting");
  if (claimed.exchange(true))
    throw Error("LaunchCounter::start: another counter is already counting in this process "
                "(CUPTI's activity records are the whole process's)");
  try {
    begin_recording();
  } catch (...) {
    claimed = false;
    throw;
  }
  counting_ = true;
}

LaunchCounts LaunchCounter::stop() {
  HOOKRT_CHECK(counting_, "LaunchCounter::stop: start() was not called");
  counting_ = false;
  LaunchCounts counts;
  try {
    counts = end_recording();
  } catch (...) {
    abandon_recording(std::size(kCountedKinds));
    claimed = false;
    throw;
  }
  set_counting(false);
  claimed = false;
  return counts;
}

LaunchCounter::~LaunchCounter() {
  if (!counting_) return;
  abandon_recording(std::size(kCountedKinds));
  claimed = false;
}

#else  // !HOOKRT_WITH_CUPTI

void LaunchCounter::start() {
  throw Error("this build has no CUPTI (cupti.h and libcupti were not found when it was configured; "
              "see HOOKRT_CUPTI_ROOT)");
}

LaunchCounts LaunchCounter::stop() {
  HOOKRT_CHECK(counting_, "LaunchCounter::stop: start() was not called");
  return {};
}

LaunchCounter::~LaunchCounter() = default;

#endif

std::optional<LaunchCounts> count_launches(const std::function<void()>& work, std::string* why_not) {
  LaunchCounter counter;
  try {
    counter.start();
  } catch (const Error& e) {
    if (why_not != nullptr) *why_not = e.what();
    return std::nullopt;
  }
  work();
  return counter.stop();
}

}  // namespace hookrt::cuda
