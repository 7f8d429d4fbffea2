// The delivery thread: steps delivered whole and in the order they were handed over, a bounded
// number waiting (handing over one more waits for room: nothing is dropped), everything handed
// over delivered before the thread stops, and deferred results matched to their records by ticket.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "hookrt/error.h"
#include "record_delivery.h"

namespace hookrt::detail {
namespace {

// A gate that a batch's finish() waits at until the test opens it.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    changed_.notify_all();
  }
  void pass() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

class GatedBatch final : public DeferredProbeBatch {
 public:
  GatedBatch(std::vector<DeferredProbeResults> results, Gate& gate) : results_(std::move(results)), gate_(gate) {}
  std::vector<DeferredProbeResults> finish() override {
    gate_.pass();
    return std::move(results_);
  }

 private:
  std::vector<DeferredProbeResults> results_;
  Gate& gate_;
};

ProbeRecord record_of(int64_t step, const std::string& module) {
  ProbeRecord record;
  record.step = step;
  record.module = module;
  return record;
}

ProbeResult stats_with_count(int64_t count) {
  StatsResult stats;
  stats.count = count;
  return stats;
}

// A step of two records: the first immediate (results attached), the second deferred under `ticket`.
HandedOverStep step_of(int64_t step, uint64_t ticket, Gate& gate) {
  HandedOverStep handed;
  handed.step = step;
  ProbeRecord now = record_of(step, "immediate");
  now.results.push_back(stats_with_count(1));
  handed.records.push_back(QueuedRecord{now, std::nullopt, false, std::nullopt});
  handed.records.push_back(QueuedRecord{record_of(step, "deferred"), ticket, false, std::nullopt});
  std::vector<DeferredProbeResults> results{{ticket, {stats_with_count(static_cast<int64_t>(ticket))}, false}};
  handed.batch = std::make_unique<GatedBatch>(std::move(results), gate);
  return handed;
}

TEST(RecordDelivery, DeliversStepsInOrderWithTheirDeferredResults) {
  Gate gate;
  gate.open();
  std::vector<std::pair<int64_t, std::string>> seen;
  std::vector<int64_t> counts;
  RecordDelivery delivery([&](const ProbeRecord& r) {
    seen.emplace_back(r.step, r.module);
    counts.push_back(std::get<StatsResult>(r.results.at(0)).count);
  });
  for (int64_t step = 0; step < 5; ++step) delivery.hand_over(step_of(step, 100 + step, gate));
  delivery.wait();
  ASSERT_EQ(seen.size(), 10u);
  for (int64_t step = 0; step < 5; ++step) {
    EXPECT_EQ(seen[2 * step], std::make_pair(step, std::string("immediate")));
    EXPECT_EQ(seen[2 * step + 1], std::make_pair(step, std::string("deferred")));
    EXPECT_EQ(counts[2 * step + 1], 100 + step) << "the deferred record got another run's results";
  }
}

TEST(RecordDelivery, HandingOverPastTheBoundWaitsForRoom) {
  Gate gate;
  std::atomic<int> delivered{0};
  RecordDelivery delivery([&](const ProbeRecord&) { ++delivered; }, /*steps_in_flight=*/1);
  delivery.hand_over(step_of(0, 1, gate));  // taken by the thread, which waits at the gate
  // Step 1 fills the queue's one place (once the thread has taken step 0 off it, which it does
  // without waiting at the gate).
  delivery.hand_over(step_of(1, 2, gate));
  std::atomic<bool> third_handed{false};
  std::thread third([&] {
    delivery.hand_over(step_of(2, 3, gate));
    third_handed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(third_handed) << "a step was queued past the bound";
  EXPECT_EQ(delivered, 0);
  gate.open();
  third.join();
  delivery.wait();
  EXPECT_TRUE(third_handed);
  EXPECT_EQ(delivered, 6);
}

TEST(RecordDelivery, StoppingDeliversEverythingHandedOver) {
  Gate gate;
  int delivered = 0;
  {
    RecordDelivery delivery([&](const ProbeRecord&) { ++delivered; }, 4);
    for (int64_t step = 0; step < 4; ++step) delivery.hand_over(step_of(step, step, gate));
    gate.open();
  }
  EXPECT_EQ(delivered, 8);
}

TEST(RecordDelivery, ABatchThatFailsReachesTheOwnerOnce) {
  class FailingBatch final : public DeferredProbeBatch {
    std::vector<DeferredProbeResults> finish() override { throw Error("cudaEventSynchronize: an illegal memory access"); }
  };
  RecordDelivery delivery([](const ProbeRecord&) {});
  HandedOverStep step;
  step.records.push_back(QueuedRecord{record_of(0, "conv1"), 7, false, std::nullopt});
  step.batch = std::make_unique<FailingBatch>();
  delivery.hand_over(std::move(step));
  EXPECT_THROW(delivery.wait(), Error);
  EXPECT_NO_THROW(delivery.wait());
}

TEST(AttachDeferredResults, NamesAMissingTicket) {
  std::deque<QueuedRecord> queue;
  queue.push_back(QueuedRecord{record_of(0, "conv1"), 5, false, std::nullopt});
  try {
    attach_deferred_results(queue, {{6, {}, false}});
    FAIL() << "a record got another run's results";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("deferred probe run 5"), std::string::npos) << error.what();
  }
}

TEST(AttachDeferredResults, GivesARepeatTheResultsOfTheRunItShares) {
  std::deque<QueuedRecord> queue;
  queue.push_back(QueuedRecord{record_of(0, "layer1.1.relu"), 4, false, std::nullopt});
  queue.push_back(QueuedRecord{record_of(0, "other"), 5, false, std::nullopt});
  queue.push_back(QueuedRecord{record_of(0, "layer1.1"), std::nullopt, false, 4});
  attach_deferred_results(queue, {{4, {stats_with_count(40)}, false}, {5, {stats_with_count(50)}, false}});
  EXPECT_EQ(std::get<StatsResult>(queue[2].record.results.at(0)).count, 40);

  std::deque<QueuedRecord> orphan;
  orphan.push_back(QueuedRecord{record_of(0, "layer1"), std::nullopt, false, 9});
  EXPECT_THROW(attach_deferred_results(orphan, {}), Error);
}

// A parked run (a batch norm's output, probed where its ReLU reads it) runs after records queued
// behind its own: each record still gets its own run's results.
TEST(AttachDeferredResults, MatchesRunsThatRanOutOfQueueOrder) {
  std::deque<QueuedRecord> queue;
  queue.push_back(QueuedRecord{record_of(0, "layer2.0.bn2"), 8, false, std::nullopt});
  queue.push_back(QueuedRecord{record_of(0, "layer2.0.downsample.0"), 6, false, std::nullopt});
  queue.push_back(QueuedRecord{record_of(0, "layer2.0.downsample.1"), 7, false, std::nullopt});
  attach_deferred_results(queue, {{6, {stats_with_count(60)}, false},
                                  {7, {stats_with_count(70)}, false},
                                  {8, {stats_with_count(80)}, false}});
  EXPECT_EQ(std::get<StatsResult>(queue[0].record.results.at(0)).count, 80);
  EXPECT_EQ(std::get<StatsResult>(queue[1].record.results.at(0)).count, 60);
  EXPECT_EQ(std::get<StatsResult>(queue[2].record.results.at(0)).count, 70);
}

TEST(AttachDeferredResults, CutsTheStepAfterTheHaltingRecord) {
  std::deque<QueuedRecord> queue;
  for (uint64_t ticket = 0; ticket < 4; ++ticket) queue.push_back(QueuedRecord{record_of(0, "m"), ticket, false, std::nullopt});
  std::vector<DeferredProbeResults> finished;
  for (uint64_t ticket = 0; ticket < 4; ++ticket) finished.push_back({ticket, {stats_with_count(1)}, ticket == 1});
  attach_deferred_results(queue, std::move(finished));
  ASSERT_EQ(queue.size(), 2u);
  EXPECT_TRUE(queue.back().halt);
  EXPECT_FALSE(queue.front().halt);
}

}  // namespace
}  // namespace hookrt::detail
