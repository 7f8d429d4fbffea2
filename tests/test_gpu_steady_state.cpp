// The GPU path's steady state: a probed step reserves no new device memory once warm, probes add
// one host wait per step however many tensors they watch (the arena's copy, waited for by the
// delivery thread: the thread that steps waits no more than without probes), and a probe run can
// be captured into a CUDA graph, with no allocation in it, and replayed on new data. Skips where no
// GPU is usable.
#include <gtest/gtest.h>

#if HOOKRT_WITH_CUDA
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "cpu/probes.h"
#include "cuda_backend.h"
#include "host_waits.h"
#include "hookrt/hook_spec.h"
#include "support/gpu.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

class GpuSteadyState : public TinyModelTest {
 protected:
  // A train-mode executor on the GPU; `hooked` puts stats,zeros,nonfinite on every module's
  // forward output and backward gradients and on every parameter gradient.
  std::unique_ptr<Executor> executor(std::unique_ptr<Backend> gpu, bool hooked) {
    if (hooked)
      for (const char* spec : {"forward:*:stats,zeros,nonfinite", "backward:*:stats,zeros,nonfinite",
                               "grad:*:stats,zeros,nonfinite"})
        register_hook_spec(model(), parse_hook_spec(spec));
    ExecutorOptions options;
    options.mode = Mode::Train;
    options.sgd.lr = 0.01;
    options.sgd.momentum = 0.9;
    return std::make_unique<Executor>(model(), std::move(gpu), options);
  }
  // Host waits per step, averaged over `steps` steps after three warm-up steps: on every thread
  // (the delivery thread's included), and on the thread that steps.
  struct Waits {
    double total = 0, stepping_thread = 0;
  };
  static Waits waits_per_step(Executor& executor, int steps) {
    for (int i = 0; i < 3; ++i) executor.step(testing::tiny_input(), testing::tiny_labels());
    executor.flush_records();
    const uint64_t before = cuda::host_waits(), before_here = cuda::host_waits_on_this_thread();
    for (int i = 0; i < steps; ++i) executor.step(testing::tiny_input(), testing::tiny_labels());
    const uint64_t here = cuda::host_waits_on_this_thread() - before_here;
    executor.flush_records();
    return {static_cast<double>(cuda::host_waits() - before) / steps, static_cast<double>(here) / steps};
  }
};

TEST_F(GpuSteadyState, ProbedStepsReserveNoNewDeviceMemoryOnceWarm) {
  HOOKRT_GPU_OR_SKIP(gpu);
  register_hook_spec(model(), parse_hook_spec("forward:layer2.*:capture"));
  auto run = executor(std::move(gpu), true);
  size_t records = 0;
  run->subscribe([&records](const ProbeRecord&) { ++records; });
  for (int i = 0; i < 3; ++i) run->step(testing::tiny_input(), testing::tiny_labels());
  const uint64_t warm = testing::device_pool_reserved_bytes();
  for (int i = 0; i < 5; ++i) run->step(testing::tiny_input(), testing::tiny_labels());
  run->flush_records();
  EXPECT_EQ(testing::device_pool_reserved_bytes(), warm) << "a steady-state step made the pool reserve more memory";
  EXPECT_GT(records, 8u * 280);
}

TEST_F(GpuSteadyState, ProbesAddOneHostWaitPerStepHoweverManyTensorsTheyWatch) {
  HOOKRT_GPU_OR_SKIP(plain_gpu);
  const Waits plain = waits_per_step(*executor(std::move(plain_gpu), false), 4);
  HOOKRT_GPU_OR_SKIP(hooked_gpu);
  auto hooked = executor(std::move(hooked_gpu), true);
  size_t records = 0;
  hooked->subscribe([&records](const ProbeRecord&) { ++records; });
  const Waits probed = waits_per_step(*hooked, 4);
  EXPECT_GT(records, 7u * 280);  // hundreds of probed tensors per step...
  EXPECT_EQ(probed.total, plain.total + 1) << "...and one more wait: the results arena's copy...";
  EXPECT_EQ(probed.stepping_thread, plain.stepping_thread) << "...on the delivery thread, not the stepping one";
}

TEST(GpuProbeGraph, AProbeRunCapturedInACudaGraphReplaysOnNewData) {
  HOOKRT_GPU_OR_SKIP(gpu);
  auto& cuda_backend = static_cast<cuda::CudaBackend&>(*gpu);
  const ProbeList probes{probes::Stats{}, probes::Zeros{}, probes::NonFinite{}, probes::Hist{16, -2.0, 2.0}};
  Tensor first = testing::tiny_input(11), second = testing::tiny_input(12);
  second.data<float>()[7] = -0.0f;
  Tensor probed = gpu->from_host(first);
  const Tensor replacement = gpu->from_host(second);
  ProbeRunOptions options;
  ProbeRecord warm_up;  // the arena, the pool and the kernels' first-use setup, outside the graph
  testing::run_probes_now(*gpu, probes, probed, warm_up, options);

  cudaStream_t stream = cuda_backend.stream();
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  ProbeRecord captured_record;
  const ProbeRunEffects effects = gpu->run_probes(probes, probed, captured_record, options);
  stream = cuda_backend.stream();  // launches any probe run still waiting to share a launch, in the capture
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess) << "the probe run did something a graph cannot hold";
  ASSERT_TRUE(effects.deferred.has_value());
  // Warm, a run takes its scratch from the backend's buffers: the graph holds no allocation.
  size_t node_count = 0;
  ASSERT_EQ(cudaGraphGetNodes(graph, nullptr, &node_count), cudaSuccess);
  std::vector<cudaGraphNode_t> nodes(node_count);
  ASSERT_EQ(cudaGraphGetNodes(graph, nodes.data(), &node_count), cudaSuccess);
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type{};
    ASSERT_EQ(cudaGraphNodeGetType(node, &type), cudaSuccess);
    EXPECT_NE(type, cudaGraphNodeTypeMemAlloc) << "the recorded probe run allocates device memory";
    EXPECT_NE(type, cudaGraphNodeTypeMemFree) << "the recorded probe run frees device memory";
  }
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  // New data in the same buffer, then two replays: the slot holds the second tensor's results.
  ASSERT_EQ(cudaMemcpyAsync(probed.raw_data(), replacement.raw_data(), probed.nbytes(), cudaMemcpyDeviceToDevice,
                            stream),
            cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  std::vector<DeferredProbeResults> finished = gpu->collect_deferred_probe_results();
  ASSERT_EQ(finished.size(), 1u);

  ProbeRecord expected;
  Tensor host = second.clone();
  cpu::run_probes(probes, host, expected, options);
  const StatsResult& got = std::get<StatsResult>(finished[0].results.at(0));
  const StatsResult& want = std::get<StatsResult>(expected.results.at(0));
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.min, want.min);
  EXPECT_EQ(got.max, want.max);
  EXPECT_NEAR(*got.mean, *want.mean, 1e-5 * std::abs(want.l1 / static_cast<double>(want.count)));
  EXPECT_EQ(std::get<ZerosResult>(finished[0].results.at(1)).zeros, std::get<ZerosResult>(expected.results.at(1)).zeros);
  EXPECT_EQ(std::get<HistResult>(finished[0].results.at(3)).counts, std::get<HistResult>(expected.results.at(3)).counts);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

}  // namespace
}  // namespace hookrt

#else

TEST(GpuSteadyState, NeedsTheCudaBackend) { GTEST_SKIP() << "hookrt was built without the CUDA backend"; }

#endif
