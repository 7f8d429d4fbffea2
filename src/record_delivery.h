#pragma once
// Record delivery — how probe records reach subscribers in firing order when a backend defers
// probe results (the GPU's stay on the device until the step ends).
//
// A step's records wait in a queue of QueuedRecords; the deferred ones carry a ticket whose
// results arrive from the step's DeferredProbeBatch. Either the stepping thread finishes the batch
// and delivers at once (when something must see the records before the optimizer: a
// nonfinite=halt probe or an update gate), or it hands the step over to the RecordDelivery
// thread and goes on to the next step while the thread waits for the results, decodes them and
// calls the subscribers. Steps are delivered in the order they were handed over.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hookrt/backend.h"
#include "hookrt/records.h"

namespace hookrt::detail {

using RecordSink = std::function<void(const ProbeRecord&)>;

// A record waiting for earlier deferred records (or its own results) before delivery.
struct QueuedRecord {
  ProbeRecord record;
  std::optional<uint64_t> ticket;  // its results are deferred under this ticket
  bool halt = false;
  // Its results are those of the deferred run with this ticket, earlier in the queue (the same
  // probes on the same tensor: see probed_tensors.h).
  std::optional<uint64_t> results_of;
};

// Fills the deferred records of `queue` from `finished` (the batch's results, by ticket), and
// those that share an earlier run's results from that run's record, and cuts the queue after the
// first halting record: the step stopped there, later firings never happened. Throws Error naming
// the ticket when a result is missing.
void attach_deferred_results(std::deque<QueuedRecord>& queue, std::vector<DeferredProbeResults> finished);

// One step's records handed to the delivery thread.
struct HandedOverStep {
  int64_t step = 0;
  std::deque<QueuedRecord> records;
  std::unique_ptr<DeferredProbeBatch> batch;  // null when no record was deferred
};

// What Error(Halted) says when the nonfinite=halt probe of `record` fired.
std::string halt_message(const ProbeRecord& record);

// Finishes the step's batch and gives its records to `sink` in firing order, on this thread; after
// a record whose nonfinite=halt probe fired, throws Error(Halted) (steps that may halt are never
// handed over to the delivery thread).
void deliver_step(HandedOverStep& step, const RecordSink& sink);

class RecordDelivery {
 public:
  // At most `steps_in_flight` handed-over steps wait for delivery; handing over one more waits.
  explicit RecordDelivery(RecordSink sink, size_t steps_in_flight = 2);
  // Delivers everything handed over, then stops the thread; failures go to stderr.
  ~RecordDelivery();
  RecordDelivery(const RecordDelivery&) = delete;
  RecordDelivery& operator=(const RecordDelivery&) = delete;

  // Queues a step for delivery (waits while steps_in_flight steps are queued). Rethrows a
  // failure of an earlier delivery first.
  void hand_over(HandedOverStep step);
  // Returns once every step handed over has been delivered; rethrows the first failure (a
  // subscriber's exception, or the backend's while finishing a batch), once.
  void wait();

 private:
  void run();
  void rethrow_failure(std::unique_lock<std::mutex>& lock);

  RecordSink sink_;
  size_t steps_in_flight_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<HandedOverStep> queue_;
  bool delivering_ = false;  // the thread holds a step taken off the queue
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::thread thread_;  // declared last: started once the members it reads exist
};

}  // namespace hookrt::detail
