// Record delivery (see record_delivery.h).
#include "record_delivery.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <utility>

#include "hookrt/error.h"

namespace hookrt::detail {

void attach_deferred_results(std::deque<QueuedRecord>& queue, std::vector<DeferredProbeResults> finished) {
  // Runs finish in the order they ran, which is not always the queue's: a parked run (see
  // HookDispatcher::park_forward) runs after records queued behind its own.
  std::map<uint64_t, DeferredProbeResults*> results;
  for (DeferredProbeResults& run : finished) results[run.ticket] = &run;
  std::map<uint64_t, const ProbeRecord*> by_ticket;
  for (auto queued = queue.begin(); queued != queue.end(); ++queued) {
    if (queued->results_of) {
      const auto earlier = by_ticket.find(*queued->results_of);
      if (earlier == by_ticket.end())
        throw Error("internal: a record shares the results of deferred probe run " +
                    std::to_string(*queued->results_of) + ", which is not before it in the step");
      queued->record.results = earlier->second->results;
    }
    if (queued->ticket) {
      const auto run = results.find(*queued->ticket);
      if (run == results.end())
        throw Error("internal: the backend did not return the results of deferred probe run " +
                    std::to_string(*queued->ticket));
      queued->record.results = std::move(run->second->results);
      queued->halt = run->second->halt;
      results.erase(run);  // each run's results go to one record
      by_ticket[*queued->ticket] = &queued->record;
    }
    if (queued->halt) {
      queue.erase(std::next(queued), queue.end());
      return;
    }
  }
}

RecordDelivery::RecordDelivery(RecordSink sink, size_t steps_in_flight)
    : sink_(std::move(sink)), steps_in_flight_(std::max<size_t>(steps_in_flight, 1)), thread_([this] { run(); }) {}

RecordDelivery::~RecordDelivery() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
  if (failure_) {
    try {
      std::rethrow_exception(failure_);
    } catch (const std::exception& error) {
      std::cerr << "hookrt: probe records could not be delivered: " << error.what() << "\n";
    }
  }
}

void RecordDelivery::rethrow_failure(std::unique_lock<std::mutex>& lock) {
  if (!failure_) return;
  std::exception_ptr failure = std::exchange(failure_, nullptr);
  lock.unlock();
  std::rethrow_exception(failure);
}

void RecordDelivery::hand_over(HandedOverStep step) {
  std::unique_lock lock(mutex_);
  rethrow_failure(lock);
  changed_.wait(lock, [this] { return queue_.size() < steps_in_flight_ || failure_; });
  rethrow_failure(lock);
  queue_.push_back(std::move(step));
  lock.unlock();
  changed_.notify_all();
}

void RecordDelivery::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return (queue_.empty() && !delivering_) || failure_; });
  rethrow_failure(lock);
}

// After a failure the thread stops delivering (the records cannot reach their subscribers in
// order any more) but keeps finishing batches, so that their host buffers go back.
void RecordDelivery::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;  // stopping, with everything delivered
    HandedOverStep step = std::move(queue_.front());
    queue_.pop_front();
    delivering_ = true;
    const bool failed = failure_ != nullptr;
    lock.unlock();
    changed_.notify_all();  // room for one more step
    std::exception_ptr failure;
    try {
      if (failed && step.batch) step.batch->finish();
      else if (!failed) deliver_step(step, sink_);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure && !failure_) failure_ = failure;
    delivering_ = false;
    changed_.notify_all();
  }
}

std::string halt_message(const ProbeRecord& record) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on `"#" + std::to_string(...)`.
  const bool grad = record.when == HookWhen::Grad;
  std::string message = "non-finite values in ";
  message.append(when_name(record.when)).append(" ").append(record.tensor).append(" of '");
  message.append(grad ? record.param : record.module);
  if (!grad && record.call > 0) message.append("#").append(std::to_string(record.call));
  message.append("' at step ").append(std::to_string(record.step)).append(" (nonfinite=halt)");
  return message;
}

void deliver_step(HandedOverStep& step, const RecordSink& sink) {
  if (step.batch) attach_deferred_results(step.records, step.batch->finish());
  step.batch.reset();
  for (const QueuedRecord& queued : step.records) {
    if (!queued.record.results.empty()) sink(queued.record);
    if (queued.halt) throw Error(halt_message(queued.record), ErrorKind::Halted);
  }
}

}  // namespace hookrt::detail
