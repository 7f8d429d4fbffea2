// Probe runs sharing one launch on the GPU. The CUDA backend holds runs of the common probes
// (stats, zeros, nonfinite: they read the tensor and change nothing) until work of its own is
// queued or a cuDNN or cuBLAS op would write a tensor they read, and launches up to
// kMaxBatchedProbeRuns of them as one kernel. Each run must get exactly the results its own launch
// gives (the same blocks, so the same merge order) and the CPU engine's within the accuracy
// promise, on one element, odd sizes, odd alignments, dead channels, non-finite values and a
// tensor larger than the grid; a full batch must be one kernel, and a convolution that writes
// other tensors must not split one; and a write of a probed tensor after its run (a fill, a
// gradient summed into it, a convolution's output) must not reach what the run reads. Skips where
// there is no GPU.
#include <gtest/gtest.h>

#if HOOKRT_WITH_CUDA
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cpu/probes.h"
#include "cuda_backend.h"
#include "cuda_entry.h"
#include "fused_probes.cuh"
#include "hookrt/backend.h"
#include "support/gpu.h"
#include "support/probe_results.h"

namespace hookrt {
namespace {

using namespace hookrt::testing;  // parse_list, nasty_tensor, expect_same_*

constexpr double kRel = 1e-5;  // DESIGN.md's accuracy promise, as in test_gpu_probes

const ProbeList& common_probes() {
  static const ProbeList probes = parse_list("stats,zeros,nonfinite");
  return probes;
}

struct Case {
  Shape shape;
  size_t offset;  // elements into its allocation: 0 is on a chunk boundary
  uint64_t seed;
  bool dead_channels = false;  // channels 1 and 3 (where there is a 3) hold nothing above zero
};

// Eight runs: a full batch, then a batch of two.
const std::vector<Case> kCases = {
    {{1}, 0, 1},
    {{5}, 1, 2},
    {{8, 64, 56, 56}, 0, 7},       // 1.6M elements: more than one pass of the grid
    {{2, 8, 9, 9}, 3, 4, true},
    {{512}, 0, 5},                 // a batch norm's weight gradient
    {{64, 3, 7, 7}, 1, 6, true},   // a stem convolution's weight gradient
    {{3, 7}, 2, 3},
    {{2, 8, 9, 9}, 2, 8},
};
constexpr size_t kSmall = 3;  // kCases[kSmall]: (2, 8, 9, 9), what the tests that write take

Tensor host_tensor(const Case& c) {
  Tensor t = nasty_tensor(c.shape, c.seed);
  if (c.dead_channels) {
    const int64_t channels = c.shape[1], inner = t.numel() / c.shape[0] / channels;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const int64_t channel = i / inner % channels;
      if (channel == 1 || channel == 3) t.data<float>()[i] = -0.5f;
    }
  }
  return t;
}

// The host tensor on the device, `offset` elements into its allocation.
Tensor device_view(Backend& gpu, const Tensor& host, size_t offset) {
  Tensor backing = gpu.empty({host.numel() + 4}, host.dtype());
  Tensor view(backing.storage(), host.shape(), host.dtype(), offset * dtype_size(host.dtype()));
  gpu.copy(host, view);
  return view;
}

ProbeRunOptions options_for(const Shape& shape) {
  ProbeRunOptions options;
  options.channel_axis = shape.size() > 1 ? 1 : 0;
  return options;
}

// Every deferred run's results into its record, by ticket.
void collect(Backend& gpu, const std::vector<std::pair<std::optional<uint64_t>, ProbeRecord*>>& runs) {
  const std::vector<DeferredProbeResults> finished = gpu.collect_deferred_probe_results();
  for (const auto& [ticket, record] : runs) {
    ASSERT_TRUE(ticket.has_value()) << "a GPU probe run is deferred";
    for (const DeferredProbeResults& run : finished)
      if (run.ticket == *ticket) record->results = run.results;
    EXPECT_FALSE(record->results.empty()) << "no results under ticket " << *ticket;
  }
}

// Runs the probes on every tensor, one run after another with nothing queued between them (one
// launch each where `apart`: the stream is asked for between runs, which launches what waits),
// and returns their records.
std::vector<ProbeRecord> run_all(Backend& gpu, std::vector<Tensor>& tensors, bool apart) {
  std::vector<ProbeRecord> records(tensors.size());
  std::vector<std::pair<std::optional<uint64_t>, ProbeRecord*>> runs;
  for (size_t i = 0; i < tensors.size(); ++i) {
    runs.emplace_back(gpu.run_probes(common_probes(), tensors[i], records[i], options_for(tensors[i].shape())).deferred,
                      &records[i]);
    if (apart) static_cast<void>(static_cast<cuda::CudaBackend&>(gpu).stream());
  }
  collect(gpu, runs);
  return records;
}

class GpuProbeBatches : public ::testing::Test {
 protected:
  void SetUp() override {
    GpuForTests made = make_gpu_backend_for_tests();
    if (!made.backend) GTEST_SKIP() << made.reason;
    gpu = std::move(made.backend);
    for (const Case& c : kCases) {
      hosts.push_back(host_tensor(c));
      tensors.push_back(device_view(*gpu, hosts.back(), c.offset));
    }
    gpu->synchronize();
  }

  std::unique_ptr<Backend> gpu;
  std::vector<Tensor> hosts, tensors;
};

TEST_F(GpuProbeBatches, GiveEachRunTheResultsOfItsOwnLaunchAndOfTheCpuEngine) {
  ASSERT_EQ(kCases.size(), cuda::kMaxBatchedProbeRuns + 2) << "the cases fill a batch and make one of two";
  for (const DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    std::vector<Tensor> typed_hosts, typed = dtype == DType::F32 ? tensors : std::vector<Tensor>{};
    for (size_t i = 0; i < kCases.size(); ++i) {
      typed_hosts.push_back(hosts[i].to(dtype));
      if (dtype != DType::F32) typed.push_back(device_view(*gpu, typed_hosts.back(), kCases[i].offset));
    }
    const std::vector<ProbeRecord> batched = run_all(*gpu, typed, /*apart=*/false);
    const std::vector<ProbeRecord> apart = run_all(*gpu, typed, /*apart=*/true);
    for (size_t i = 0; i < kCases.size(); ++i) {
      const std::string name = dtype_name(dtype) + " run " + std::to_string(i) + " " + shape_string(kCases[i].shape);
      expect_same_results(batched[i].results, apart[i].results, 0.0, 0.0, name + ", batched vs alone");
      ProbeRecord want;
      Tensor host = typed_hosts[i];
      cpu::run_probes(common_probes(), host, want, options_for(host.shape()));
      expect_same_results(batched[i].results, want.results, kRel, 0.0, name + ", against the CPU engine");
    }
  }
}

// A batch's kernel reads one element type: runs over F32, then BF16, then F16 tensors are three
// launches, each run still getting its own results.
TEST_F(GpuProbeBatches, StartAnotherBatchWhereTheElementTypeChanges) {
  const DType dtypes[] = {DType::F32, DType::F32, DType::BF16, DType::BF16, DType::F16};
  std::vector<Tensor> mixed_hosts, mixed;
  for (size_t i = 0; i < std::size(dtypes); ++i) {
    mixed_hosts.push_back(hosts[i].to(dtypes[i]));
    mixed.push_back(device_view(*gpu, mixed_hosts.back(), kCases[i].offset));
  }
  gpu->synchronize();
  const std::vector<ProbeRecord> records = run_all(*gpu, mixed, /*apart=*/false);
  for (size_t i = 0; i < mixed.size(); ++i) {
    ProbeRecord want;
    Tensor host = mixed_hosts[i];
    cpu::run_probes(common_probes(), host, want, options_for(host.shape()));
    expect_same_results(records[i].results, want.results, kRel, 0.0, dtype_name(dtypes[i]) + " run " + std::to_string(i));
  }
  std::string why_not_counted;
  const std::optional<cuda::LaunchCounts> counts =
      cuda::count_launches([&] { run_all(*gpu, mixed, /*apart=*/false); }, &why_not_counted);
  if (!counts) GTEST_SKIP() << "launches not counted: " << why_not_counted;
  EXPECT_EQ(counts->kernels, 3) << "one launch per run of tensors of one element type";
}

TEST_F(GpuProbeBatches, LaunchAFullBatchAsOneKernel) {
  std::vector<Tensor> batch(tensors.begin(), tensors.begin() + static_cast<std::ptrdiff_t>(cuda::kMaxBatchedProbeRuns));
  std::string why_not_counted;
  const std::optional<cuda::LaunchCounts> counts =
      cuda::count_launches([&] { run_all(*gpu, batch, /*apart=*/false); }, &why_not_counted);
  if (!counts) GTEST_SKIP() << "launches not counted: " << why_not_counted;
  EXPECT_EQ(counts->kernels, 1) << "a full batch of runs is one kernel";
}

// Runs on both sides of a convolution that writes other tensors (a weight's gradient, then the
// layer's grad_input) share one launch: the convolution's kernels and one more.
TEST_F(GpuProbeBatches, GatherRunsOnBothSidesOfAConvolutionThatWritesOtherTensors) {
  const Tensor x = gpu->from_host(nasty_tensor({2, 8, 9, 9}, 21, 0.0, 1.0));
  const Tensor w = gpu->from_host(nasty_tensor({8, 8, 3, 3}, 22, 0.0, 0.2));
  auto convolve = [&] {
    Tensor y = gpu->empty({2, 8, 9, 9}, DType::F32);
    gpu->conv2d_forward(x, w, y, Conv2dGeometry{1, 1});
    return y;
  };
  convolve();  // cuDNN's first-use setup, outside the counts
  gpu->synchronize();
  std::string why_not_counted;
  const std::optional<cuda::LaunchCounts> alone = cuda::count_launches([&] { convolve(); }, &why_not_counted);
  if (!alone) GTEST_SKIP() << "launches not counted: " << why_not_counted;
  std::vector<ProbeRecord> records(2);
  const std::optional<cuda::LaunchCounts> with_runs = cuda::count_launches(
      [&] {
        const std::optional<uint64_t> first =
            gpu->run_probes(common_probes(), tensors[4], records[0], options_for(tensors[4].shape())).deferred;
        Tensor y = convolve();
        const std::optional<uint64_t> second = gpu->run_probes(common_probes(), y, records[1], options_for(y.shape())).deferred;
        collect(*gpu, {{first, &records[0]}, {second, &records[1]}});
      },
      &why_not_counted);
  ASSERT_TRUE(with_runs.has_value()) << why_not_counted;
  EXPECT_EQ(with_runs->kernels, alone->kernels + 1) << "the runs before and after the convolution share one launch";
  ProbeRecord want;
  Tensor host = hosts[4];
  cpu::run_probes(common_probes(), host, want, options_for(host.shape()));
  expect_same_results(records[0].results, want.results, kRel, 0.0, "the run before the convolution");
}

// The writes of a probed tensor, after its run, that the batch must be launched before: hookrt's
// own kernels (a fill, a gradient summed in place) and cuDNN's (a convolution's output).
enum class Write { Fill, SumInto, ConvolutionOutput };

std::string write_name(Write write) {
  switch (write) {
    case Write::Fill: return "a fill";
    case Write::SumInto: return "a gradient summed into it";
    case Write::ConvolutionOutput: return "a convolution writing it";
  }
  return "?";
}

// Two runs (a batch, not a run alone) on `tensor` and another, then the write: the runs report the
// tensor as it was, and a run after the write reports it as written. The convolution's operands
// are on the device before the runs, so that nothing but the convolution comes between.
TEST_F(GpuProbeBatches, LaunchBeforeWorkThatWritesTheirTensors) {
  const Tensor x = gpu->from_host(nasty_tensor({2, 8, 9, 9}, 31, 0.0, 1.0));
  const Tensor w = gpu->from_host(nasty_tensor({8, 8, 1, 1}, 32, 0.0, 0.3));
  for (const Write write : {Write::Fill, Write::SumInto, Write::ConvolutionOutput}) {
    const std::string name = write_name(write);
    Tensor tensor = device_view(*gpu, hosts[kSmall], 0);  // aligned, as cuDNN's outputs are
    gpu->synchronize();
    const ProbeRunOptions options = options_for(tensor.shape());
    ProbeRecord before, other, after;
    const std::optional<uint64_t> before_ticket = gpu->run_probes(common_probes(), tensor, before, options).deferred;
    const std::optional<uint64_t> other_ticket =
        gpu->run_probes(common_probes(), tensors[4], other, options_for(tensors[4].shape())).deferred;
    Tensor host_after = hosts[kSmall].clone();
    switch (write) {
      case Write::Fill:
        gpu->fill(tensor, 0.0);
        host_after = Tensor::zeros(host_after.shape());
        break;
      case Write::SumInto:
        gpu->accumulate(tensor, tensor);  // doubles every value, exactly
        for (int64_t i = 0; i < host_after.numel(); ++i) host_after.data<float>()[i] *= 2.0f;
        break;
      case Write::ConvolutionOutput:
        gpu->conv2d_forward(x, w, tensor, Conv2dGeometry{});
        break;
    }
    const std::optional<uint64_t> after_ticket = gpu->run_probes(common_probes(), tensor, after, options).deferred;
    collect(*gpu, {{before_ticket, &before}, {other_ticket, &other}, {after_ticket, &after}});
    if (write == Write::ConvolutionOutput) host_after = gpu->to_host(tensor);  // cuDNN's values, as the run saw them

    ProbeRecord want_before, want_after;
    Tensor host_before = hosts[kSmall];
    cpu::run_probes(common_probes(), host_before, want_before, options);
    cpu::run_probes(common_probes(), host_after, want_after, options);
    expect_same_results(before.results, want_before.results, kRel, 0.0, name + ": the run before it");
    expect_same_results(after.results, want_after.results, kRel, 0.0, name + ": the run after it");
  }
}

// What each producer kind must be given, checked on the host before any launch: a batch norm's
// apply reads no b, nor does its inference dx (no x), and neither may be refused for it.
TEST(FusedProducers, NeedTheInputsTheirKindReadsAndNoMore) {
  using cuda::FusedProducer, cuda::ProducerKind;
  const float coefficients[4] = {};
  const float a = 0, b = 0;
  auto missing = [&](ProducerKind kind, const void* in_a, const void* in_b, const float* k) {
    FusedProducer p;
    p.kind = kind, p.a = in_a, p.b = in_b, p.coefficients = k;
    const char* name = cuda::missing_producer_input(p);
    return std::string(name ? name : "");
  };
  EXPECT_EQ(missing(ProducerKind::None, nullptr, nullptr, nullptr), "");
  EXPECT_EQ(missing(ProducerKind::ReluForward, &a, nullptr, nullptr), "");
  EXPECT_EQ(missing(ProducerKind::ReluForward, nullptr, nullptr, nullptr), "a");
  EXPECT_EQ(missing(ProducerKind::ReluBackward, &a, nullptr, nullptr), "b");
  EXPECT_EQ(missing(ProducerKind::AddReluForward, &a, &b, nullptr), "");
  EXPECT_EQ(missing(ProducerKind::AddReluForward, &a, nullptr, nullptr), "b");
  EXPECT_EQ(missing(ProducerKind::BatchNormApply, &a, nullptr, coefficients), "");
  EXPECT_EQ(missing(ProducerKind::BatchNormApply, &a, nullptr, nullptr), "coefficients");
  EXPECT_EQ(missing(ProducerKind::BatchNormDx, &a, nullptr, coefficients), "") << "inference: no x";
  EXPECT_EQ(missing(ProducerKind::BatchNormDx, &a, &b, coefficients), "");
  EXPECT_EQ(missing(ProducerKind::BatchNormDx, nullptr, &b, coefficients), "a");
}

}  // namespace
}  // namespace hookrt

#else

TEST(GpuProbeBatches, NeedsTheCudaBackend) { GTEST_SKIP() << "hookrt was built without the CUDA backend"; }

#endif
