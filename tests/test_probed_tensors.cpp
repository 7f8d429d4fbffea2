// ProbedTensors: a remembered run stands in only for the same probes on the same tensor (storage,
// offset, shape, dtype) and channel axis; runs that change, capture or may halt are never
// remembered; a written tensor's runs are forgotten, and only its; a tensor nothing else holds is
// let go; only the last few dozen runs are kept.
#include <gtest/gtest.h>

#include <vector>

#include "hookrt/probes.h"
#include "probed_tensors.h"

namespace hookrt::detail {
namespace {

const ProbeList kStats{probes::Stats{}};

EarlierProbeRun run_with_ticket(uint64_t ticket) { return EarlierProbeRun{{}, ticket}; }

TEST(ProbedTensors, FindsTheSameProbesOnTheSameTensor) {
  ProbedTensors probed;
  Tensor t = Tensor::zeros({2, 3, 4});
  probed.remember(t, kStats, 1, run_with_ticket(7));
  Tensor same_tensor = t;  // another handle on the same storage
  const EarlierProbeRun* found = probed.find(same_tensor, kStats, 1);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->ticket, 7u);
}

TEST(ProbedTensors, TellsApartEverythingThatChangesTheResults) {
  ProbedTensors probed;
  Tensor t = Tensor::zeros({2, 3, 4});
  probed.remember(t, kStats, 1, run_with_ticket(1));
  EXPECT_EQ(probed.find(t, kStats, 0), nullptr) << "another channel axis";
  EXPECT_EQ(probed.find(t, ProbeList{probes::Stats{}, probes::Zeros{}}, 1), nullptr) << "other probes";
  EXPECT_EQ(probed.find(t, ProbeList{probes::Hist{8, -1, 1}}, 1), nullptr) << "other probes";
  EXPECT_EQ(probed.find(Tensor(t.storage(), {6, 4}, DType::F32), kStats, 1), nullptr) << "another shape";
  EXPECT_EQ(probed.find(Tensor(t.storage(), {2, 3, 3}, DType::F32, 4), kStats, 1), nullptr) << "another offset";
  EXPECT_EQ(probed.find(Tensor::zeros({2, 3, 4}), kStats, 1), nullptr) << "another tensor with equal values";
  probed.remember(t, ProbeList{probes::Hist{8, -1, 1}}, 1, run_with_ticket(2));
  EXPECT_EQ(probed.find(t, ProbeList{probes::Hist{8, -1, 2}}, 1), nullptr) << "another histogram range";
  EXPECT_NE(probed.find(t, ProbeList{probes::Hist{8, -1, 1}}, 1), nullptr);
}

TEST(ProbedTensors, OnlyObservingRunsMayStandIn) {
  EXPECT_TRUE(ProbedTensors::reusable(ProbeList{probes::Stats{}, probes::Zeros{}, probes::NonFinite{}, probes::Hist{},
                                                probes::Channels{}}));
  EXPECT_FALSE(ProbedTensors::reusable(ProbeList{probes::Stats{}, probes::Clamp{}}));
  EXPECT_FALSE(ProbedTensors::reusable(ProbeList{probes::ClipNorm{}}));
  EXPECT_FALSE(ProbedTensors::reusable(ProbeList{probes::Capture{}}));
  EXPECT_FALSE(ProbedTensors::reusable(ProbeList{probes::NonFinite{probes::NonFinitePolicy::Halt}}));
}

TEST(ProbedTensors, ForgetsOnRequest) {
  ProbedTensors probed;
  Tensor t = Tensor::zeros({4});
  probed.remember(t, kStats, 0, run_with_ticket(1));
  probed.forget();
  EXPECT_EQ(probed.find(t, kStats, 0), nullptr);
}

TEST(ProbedTensors, ForgetsEveryViewOfAWrittenTensorAndNothingElse) {
  ProbedTensors probed;
  Tensor written = Tensor::zeros({2, 4});
  Tensor view(written.storage(), {4}, DType::F32, 16);  // its second row
  Tensor other = Tensor::zeros({2, 4});
  probed.remember(written, kStats, 0, run_with_ticket(1));
  probed.remember(view, kStats, 0, run_with_ticket(2));
  probed.remember(other, kStats, 0, run_with_ticket(3));
  probed.forget(view);
  EXPECT_EQ(probed.find(written, kStats, 0), nullptr);
  EXPECT_EQ(probed.find(view, kStats, 0), nullptr);
  ASSERT_NE(probed.find(other, kStats, 0), nullptr);
  EXPECT_EQ(probed.find(other, kStats, 0)->ticket, 3u);
}

TEST(ProbedTensors, LetsGoOfTensorsNothingElseHolds) {
  ProbedTensors probed;
  std::weak_ptr<Storage> storage;
  {
    Tensor t = Tensor::zeros({1000});
    storage = t.storage();
    probed.remember(t, kStats, 0, run_with_ticket(1));
  }
  EXPECT_FALSE(storage.expired()) << "kept while remembered, so its address cannot be reused";
  Tensor other = Tensor::zeros({4});
  EXPECT_EQ(probed.find(other, kStats, 0), nullptr);
  EXPECT_TRUE(storage.expired()) << "a tensor only the memory held was kept past the next firing";
}

// A BasicBlock's backward fires about 15 runs (grad_input of each child, parameter gradients)
// between the block's grad_output and its Sequential's: the memory holds them all, and no more
// than a few dozen.
TEST(ProbedTensors, KeepsTheLastFewDozenRuns) {
  ProbedTensors probed;
  std::vector<Tensor> tensors;
  for (int i = 0; i < 64; ++i) {
    tensors.push_back(Tensor::zeros({4}));
    probed.remember(tensors.back(), kStats, 0, run_with_ticket(static_cast<uint64_t>(i)));
  }
  EXPECT_EQ(probed.find(tensors.front(), kStats, 0), nullptr);
  ASSERT_NE(probed.find(tensors[64 - 30], kStats, 0), nullptr) << "30 runs back";
  ASSERT_NE(probed.find(tensors.back(), kStats, 0), nullptr);
  EXPECT_EQ(probed.find(tensors.back(), kStats, 0)->ticket, 63u);
}

}  // namespace
}  // namespace hookrt::detail
