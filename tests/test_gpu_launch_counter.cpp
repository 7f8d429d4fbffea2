// The launch counter behind `hookrt bench`'s launches per step: a known sequence of backend calls
// gives exact counts of kernels, memcpys and memsets; counts start and end where the counted work
// does; and one count at a time. GPU tests skip, saying why, without a GPU, and also where this
// build or machine cannot count (no CUPTI compiled in, CUPTI refused), since then there is nothing
// to hold to the sequence.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "cuda_entry.h"
#include "hookrt/backend.h"
#include "support/gpu.h"
#if HOOKRT_WITH_CUDA
#include "launch_counter.h"
#endif

namespace hookrt {
namespace {

using cuda::count_launches;
using cuda::LaunchCounts;

// In any build, on any machine: the work runs exactly when its launches are counted, and where
// they are not, the reason says why.
TEST(LaunchCounter, RunsTheWorkOnceWhenItCountsAndNotAtAllWhenItCannot) {
  int runs = 0;
  std::string why;
  const std::optional<LaunchCounts> counts = count_launches([&] { ++runs; }, &why);
  if (counts) {
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(counts->kernels + counts->memcpys + counts->memsets, 0) << "the work queued nothing";
  } else {
    EXPECT_EQ(runs, 0);
    EXPECT_FALSE(why.empty()) << "a count not taken says why";
  }
}

class GpuLaunchCounter : public ::testing::Test {
 protected:
  // Four device tensors of 1000 F32 elements, allocated and settled before any count starts.
  void make_tensors(Backend& gpu) {
    for (Tensor* t : {&a, &b, &c, &d}) *t = gpu.empty({1000});
    gpu.synchronize();
  }
  Tensor a, b, c, d;
};

// Declares `counts` from count_launches(work), or skips the test with the reason there is none.
#define HOOKRT_COUNT_OR_SKIP(counts, ...)                                                     \
  std::string counts##_why;                                                                 \
  const std::optional<LaunchCounts> counts = count_launches((__VA_ARGS__), &counts##_why); \
  if (!counts) GTEST_SKIP() << "launches cannot be counted here: " << counts##_why

TEST_F(GpuLaunchCounter, KnownSequenceGivesExactCountsPerKind) {
  HOOKRT_GPU_OR_SKIP(gpu);
  make_tensors(*gpu);
  HOOKRT_COUNT_OR_SKIP(counts, [&] {
    gpu->fill(a, 1.0);           // kernel
    gpu->fill(b, 2.0);           // kernel
    gpu->add(a, b, c);           // kernel
    gpu->copy(c, d);             // device-to-device memcpy
    Tensor z = gpu->zeros({64});  // memset
  });
  EXPECT_EQ(counts->kernels, 3);
  EXPECT_EQ(counts->memcpys, 1);
  EXPECT_EQ(counts->memsets, 1);
  EXPECT_EQ(gpu->to_host(d).data<float>()[999], 3.0f) << "the counted work ran";
}

// The same sequence's device time, by kernel family: both fills in one family whatever the
// element type's template argument, and every item's time counted once.
TEST_F(GpuLaunchCounter, DeviceTimesNameEachKernelFamilyAndCountEveryItem) {
  HOOKRT_GPU_OR_SKIP(gpu);
  make_tensors(*gpu);
  HOOKRT_COUNT_OR_SKIP(counts, [&] {
    gpu->fill(a, 1.0);
    gpu->fill(b, 2.0);
    gpu->add(a, b, c);
    gpu->copy(c, d);
    Tensor z = gpu->zeros({64});
  });
  std::map<std::string, DeviceWorkTime> by_name;
  std::string names;
  int64_t items = 0;
  for (const DeviceWorkTime& time : counts->times) {
    EXPECT_TRUE(by_name.emplace(time.name, time).second) << time.name << " twice";
    EXPECT_GT(time.ms, 0.0) << time.name;
    items += time.items;
    names += time.name + "\n";
  }
  EXPECT_EQ(items, counts->kernels + counts->memcpys + counts->memsets);
  ASSERT_TRUE(by_name.count("hookrt::cuda::detail::fill_kernel")) << names;
  EXPECT_EQ(by_name.at("hookrt::cuda::detail::fill_kernel").items, 2);
  ASSERT_TRUE(by_name.count("memcpy"));
  EXPECT_EQ(by_name.at("memcpy").items, 1);
  ASSERT_TRUE(by_name.count("memset"));
  EXPECT_EQ(by_name.at("memset").items, 1);
  for (size_t i = 1; i < counts->times.size(); ++i)
    EXPECT_GE(counts->times[i - 1].ms, counts->times[i].ms) << "most time first";
}

TEST_F(GpuLaunchCounter, CopiesToAndFromTheHostAreMemcpys) {
  HOOKRT_GPU_OR_SKIP(gpu);
  Tensor host = Tensor::zeros({1000});
  host.data<float>()[7] = 5.0f;
  Tensor back;
  // 4000 bytes: one copy each way, well inside any staging chunk.
  HOOKRT_COUNT_OR_SKIP(counts, [&] { back = gpu->to_host(gpu->from_host(host)); });
  EXPECT_EQ(counts->kernels, 0);
  EXPECT_EQ(counts->memcpys, 2);
  EXPECT_EQ(counts->memsets, 0);
  EXPECT_EQ(back.data<float>()[7], 5.0f);
}

TEST_F(GpuLaunchCounter, WorkQueuedBeforeTheCountIsNotCounted) {
  HOOKRT_GPU_OR_SKIP(gpu);
  make_tensors(*gpu);
  for (int i = 0; i < 20; ++i) gpu->fill(a, i);  // queued, not waited for
  HOOKRT_COUNT_OR_SKIP(counts, [&] { gpu->fill(b, 1.0); });
  EXPECT_EQ(counts->kernels, 1);
}

TEST_F(GpuLaunchCounter, ConsecutiveCountsAreIndependent) {
  HOOKRT_GPU_OR_SKIP(gpu);
  make_tensors(*gpu);
  HOOKRT_COUNT_OR_SKIP(first, [&] {
    for (int i = 0; i < 5; ++i) gpu->fill(a, i);
  });
  EXPECT_EQ(first->kernels, 5);
  const std::optional<LaunchCounts> empty = count_launches([] {}, nullptr);
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->kernels, 0) << "nothing of the first count arrives in the second";
  const std::optional<LaunchCounts> third = count_launches([&] { gpu->copy(a, b); }, nullptr);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->kernels, 0);
  EXPECT_EQ(third->memcpys, 1);
}

TEST_F(GpuLaunchCounter, WorkOnAnotherThreadCounts) {
  HOOKRT_GPU_OR_SKIP(gpu);
  make_tensors(*gpu);
  HOOKRT_COUNT_OR_SKIP(counts, [&] {
    std::thread other([&] { gpu->fill(a, 1.0); });
    other.join();
    gpu->fill(b, 1.0);
  });
  EXPECT_EQ(counts->kernels, 2) << "the count is the process's, not the calling thread's";
}

TEST_F(GpuLaunchCounter, WorkThatThrowsPassesThroughAndTheNextCountStillWorks) {
  HOOKRT_GPU_OR_SKIP(gpu);
  make_tensors(*gpu);
  HOOKRT_COUNT_OR_SKIP(nothing, [] {});
  EXPECT_EQ(nothing->kernels, 0);
  EXPECT_THROW(count_launches(
                   [&] {
                     gpu->fill(a, 1.0);
                     throw std::runtime_error("work failed");
                   },
                   nullptr),
               std::runtime_error);
  const std::optional<LaunchCounts> after = count_launches([&] { gpu->fill(b, 1.0); }, nullptr);
  ASSERT_TRUE(after.has_value()) << "the failed count released the counter";
  EXPECT_EQ(after->kernels, 1) << "the abandoned count's kernel does not arrive in this one";
}

#if HOOKRT_WITH_CUDA
TEST_F(GpuLaunchCounter, OnlyOneCounterCountsAtATime) {
  HOOKRT_GPU_OR_SKIP(gpu);
  make_tensors(*gpu);
  cuda::LaunchCounter first;
  try {
    first.start();
  } catch (const Error& e) {
    GTEST_SKIP() << "launches cannot be counted here: " << e.what();
  }
  cuda::LaunchCounter second;
  try {
    second.start();
    ADD_FAILURE() << "a second counter started while the first was counting";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another counter is already counting"), std::string::npos) << e.what();
  }
  gpu->fill(a, 1.0);
  EXPECT_EQ(first.stop().kernels, 1);
  EXPECT_FALSE(first.counting());
}
#endif

}  // namespace
}  // namespace hookrt
