// Probes in a batch norm's elementwise pass on the GPU: a probe run handed a batch norm's apply or
// dx (ProbeRunOptions::produce, the batch norm split as Backend::splits_batchnorm says) writes the
// tensor and probes it in one pass, and the apply's pass probes the convolution output it reads
// (ProbeRunOptions::probe_input). Against the CPU backend's batchnorm_apply and batchnorm_dx with
// the same coefficients, then the CPU probe engine: the tensor bit for bit, every result as
// test_gpu_probes holds them, in F32, BF16 and F16, NCHW and channels-last, on planes of odd sizes
// (chunks of four that span channels), one channel, and a tensor larger than the grid; and the
// apply with the ReLU after it as one kernel. Skips where there is no GPU.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "cpu/probes.h"
#include "cuda_entry.h"
#include "hookrt/backend.h"
#include "support/gpu.h"
#include "support/gpu_ops.h"
#include "support/probe_results.h"

namespace hookrt {
namespace {

using namespace hookrt::testing;  // parse_list, nasty_tensor, expect_same_*

constexpr double kRel = 1e-5;  // DESIGN.md's accuracy promise, as in test_gpu_probes

struct Case {
  ProducingOp::Kind kind;
  bool training;  // BatchNormDx: whether it reads x
  DType dtype;
  MemoryFormat format;
  Shape shape;
  std::string list, input_list;  // input_list: the apply's probes on x ("" for none)
  uint64_t seed;

  std::string name() const {
    const std::string op = kind == ProducingOp::Kind::BatchNormApply ? "batchnorm_apply"
                           : training                                ? "batchnorm_dx (training)"
                                                                     : "batchnorm_dx (inference)";
    return op + " [" + list + "] probing x [" + input_list + "] on " + dtype_name(dtype) +
           (format == MemoryFormat::ChannelsLast ? " NHWC " : " NCHW ") + shape_string(shape);
  }
};

// Coefficients as a batch norm of these inputs computes them, on the host: the CPU backend's parts.
Tensor host_coefficients(const Case& c) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  const Shape channels{c.shape[1]};
  const Tensor weight = gpu_ops::uniform(channels, c.seed + 10, 0.5, 1.5);
  const Tensor bias = gpu_ops::uniform(channels, c.seed + 11);
  Tensor running_mean = gpu_ops::uniform(channels, c.seed + 12);
  Tensor running_var = gpu_ops::uniform(channels, c.seed + 13, 0.5, 2.0);
  const BatchNormOptions options{c.training ? BatchNormMode::Training : BatchNormMode::Inference, 1e-5, 0.1};
  // Finite inputs for the statistics, so that the coefficients are finite and the nasty values
  // of the tensors below reach the elementwise formulas.
  const Tensor finite_x = finite_tensor(c.shape, c.seed + 14).to(c.dtype);
  Tensor save_mean, save_invstd, forward;
  cpu->batchnorm_forward_coefficients(finite_x, weight, bias, running_mean, running_var, save_mean, save_invstd, forward,
                                      options);
  if (c.kind == ProducingOp::Kind::BatchNormApply) return forward;
  Tensor dweight, dbias, backward;
  cpu->batchnorm_backward_coefficients(finite_tensor(c.shape, c.seed + 15).to(c.dtype), finite_x, weight, save_mean,
                                       save_invstd, dweight, dbias, backward, options);
  return backward;
}

void expect_batchnorm_pass_matches_cpu(Backend& gpu, const Case& c) {
  const bool apply = c.kind == ProducingOp::Kind::BatchNormApply;
  const Tensor host_a = nasty_tensor(c.shape, c.seed).to(c.dtype);  // x (apply) or dy
  const Tensor host_x = apply || !c.training ? Tensor() : nasty_tensor(c.shape, c.seed + 1).to(c.dtype);
  const Tensor coefficients = host_coefficients(c);

  std::unique_ptr<Backend> cpu = make_cpu_backend();
  Tensor want = Tensor::empty(c.shape, c.dtype);
  cpu->run_producing_op(ProducingOp{c.kind, host_a, host_x, coefficients}, want);
  ProbeRunOptions options;
  options.channel_axis = 1;
  const ProbeList list = c.list.empty() ? ProbeList{} : parse_list(c.list);
  ProbeRecord want_record, want_input;
  cpu::run_probes(list, want, want_record, options);
  const ProbeList input_list = c.input_list.empty() ? ProbeList{} : parse_list(c.input_list);
  if (!input_list.empty()) {
    Tensor x = host_a;
    cpu::run_probes(input_list, x, want_input, options);
  }

  auto on_gpu = [&](const Tensor& host) {
    return host.defined() ? gpu.converted(gpu.from_host(host), c.dtype, c.format) : Tensor();
  };
  const Tensor a = on_gpu(host_a), x = on_gpu(host_x);
  Tensor out = gpu.empty(c.shape, c.dtype, c.format);
  options.produce = ProducingOp{c.kind, a, x, gpu.from_host(coefficients)};
  ProbeRecord got_record, got_input;
  if (!input_list.empty()) options.probe_input = InputProbeRun{0, input_list, 1, &got_input};
  gpu.synchronize();
  auto run = [&] { run_probes_now(gpu, list, out, got_record, options); };
  std::string why_not_counted;
  if (const std::optional<cuda::LaunchCounts> counts = cuda::count_launches(run, &why_not_counted))
    EXPECT_EQ(counts->kernels, 1) << c.name() << ": one pass writes, probes and reads the input once";
  else
    run();

  expect_same_floats(gpu.to_host(out), want, 0.0, c.name() + " tensor");
  expect_same_results(got_record.results, want_record.results, kRel, 0.0, c.name() + " output");
  expect_same_results(got_input.results, want_input.results, kRel, 0.0, c.name() + " input");
}

std::vector<Shape> shapes() {
  // Odd planes (NCHW chunks span channels), odd channels (NHWC chunks span rows), one pixel.
  return {Shape{2, 3, 5, 7}, Shape{4, 16, 9, 9}, Shape{3, 5, 1, 1}, Shape{2, 64, 7, 7}};
}

TEST(GpuBatchNormEpilogueProbes, WriteTheApplyAndProbeItAndItsInputAsTheCpuBackendDoes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 3000;
  for (const DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (const MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast})
      for (const Shape& shape : shapes())
        for (const auto& [list, input_list] : std::vector<std::pair<std::string, std::string>>{
                 {"stats,zeros,nonfinite", "stats,zeros,nonfinite"}, {"stats,zeros,nonfinite", ""},
                 {"", "stats,zeros,nonfinite"}, {"zeros", "stats"}})
          for (const bool training : {true, false})
            expect_batchnorm_pass_matches_cpu(*gpu, Case{ProducingOp::Kind::BatchNormApply, training, dtype, format,
                                                         shape, list, input_list, seed += 20});
}

TEST(GpuBatchNormEpilogueProbes, WriteTheDxAndProbeItAsTheCpuBackendDoes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 5000;
  for (const DType dtype : {DType::F32, DType::BF16, DType::F16})
    for (const MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast})
      for (const Shape& shape : shapes())
        for (const bool training : {true, false})
          expect_batchnorm_pass_matches_cpu(*gpu, Case{ProducingOp::Kind::BatchNormDx, training, dtype, format, shape,
                                                       "stats,zeros,nonfinite", "", seed += 20});
}

TEST(GpuBatchNormEpilogueProbes, WriteTensorsLargerThanTheGrid) {
  HOOKRT_GPU_OR_SKIP(gpu);
  uint64_t seed = 7000;
  for (const DType dtype : {DType::F32, DType::BF16})
    for (const MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast}) {
      expect_batchnorm_pass_matches_cpu(*gpu, Case{ProducingOp::Kind::BatchNormApply, true, dtype, format,
                                                   {3, 64, 130, 131}, "stats,zeros,nonfinite", "stats,zeros,nonfinite",
                                                   seed += 20});
      expect_batchnorm_pass_matches_cpu(*gpu, Case{ProducingOp::Kind::BatchNormDx, true, dtype, format,
                                                   {3, 64, 130, 131}, "stats,zeros,nonfinite", "", seed += 20});
    }
}

// Lists the pass cannot run as one (a capture, a clipnorm whose norm comes first) still give the
// op's tensor and the CPU's results, the op then running before the probes.
TEST(GpuBatchNormEpilogueProbes, ListsThatTakeMorePassesStillWriteTheOpsTensor) {
  HOOKRT_GPU_OR_SKIP(gpu);
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  uint64_t seed = 9000;
  for (const DType dtype : {DType::F32, DType::F16})
    for (const std::string list : {"capture,stats", "clipnorm=1,stats", "hist=8:-2:2,channels,zeros"}) {
      const Case c{ProducingOp::Kind::BatchNormDx, true, dtype, MemoryFormat::ChannelsLast, {2, 6, 5, 5}, list, "",
                   seed += 20};
      const Tensor host_dy = finite_tensor(c.shape, c.seed).to(dtype);
      const Tensor host_x = finite_tensor(c.shape, c.seed + 1).to(dtype);
      const Tensor coefficients = host_coefficients(c);
      Tensor want = Tensor::empty(c.shape, dtype);
      cpu->batchnorm_dx(host_dy, host_x, coefficients, want);
      ProbeRunOptions options;
      ProbeRecord want_record;
      cpu::run_probes(parse_list(list), want, want_record, options);
      Tensor out = gpu->empty(c.shape, dtype, c.format);
      const Tensor dy = gpu->converted(gpu->from_host(host_dy), dtype, c.format);
      const Tensor x = gpu->converted(gpu->from_host(host_x), dtype, c.format);
      options.produce = ProducingOp{c.kind, dy, x, gpu->from_host(coefficients)};
      ProbeRecord got_record;
      run_probes_now(*gpu, parse_list(list), out, got_record, options);
      expect_same_floats(gpu->to_host(out), want, clipnorm_tensor_rel(dtype), c.name() + " tensor");
      expect_same_results(got_record.results, want_record.results, kRel, clipnorm_tensor_rel(dtype), c.name());
    }
}

// A batch norm's apply with the ReLU after it (and the residual add between): one kernel of its
// own, its output the CPU backend's ops' bit for bit, NaNs and infinities included; handed to a
// probe run, it runs first and the probes read what it wrote.
TEST(GpuBatchNormEpilogueProbes, ApplyTheBatchNormAndItsReluAsTheCpuBackendDoes) {
  HOOKRT_GPU_OR_SKIP(gpu);
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  uint64_t seed = 11000;
  for (const ProducingOp::Kind kind : {ProducingOp::Kind::BatchNormApplyRelu, ProducingOp::Kind::BatchNormApplyAddRelu})
    for (const DType dtype : {DType::F32, DType::BF16, DType::F16})
      for (const MemoryFormat format : {MemoryFormat::Contiguous, MemoryFormat::ChannelsLast})
        for (const Shape& shape : shapes()) {
          const Case c{ProducingOp::Kind::BatchNormApply, true, dtype, format, shape, "stats,zeros,nonfinite", "",
                       seed += 20};
          const std::string name = std::string(kind == ProducingOp::Kind::BatchNormApplyRelu ? "apply+relu "
                                                                                               : "apply+add+relu ") +
                                   c.name();
          const Tensor host_x = nasty_tensor(shape, c.seed).to(dtype);
          const Tensor host_b =
              kind == ProducingOp::Kind::BatchNormApplyAddRelu ? nasty_tensor(shape, c.seed + 1).to(dtype) : Tensor();
          const Tensor coefficients = host_coefficients(c);
          Tensor want = Tensor::empty(shape, dtype);
          cpu->run_producing_op(ProducingOp{kind, host_x, host_b, coefficients}, want);
          const auto on_gpu = [&](const Tensor& host) {
            return host.defined() ? gpu->converted(gpu->from_host(host), dtype, format) : Tensor();
          };
          const ProducingOp op{kind, on_gpu(host_x), on_gpu(host_b), gpu->from_host(coefficients)};
          Tensor got = gpu->empty(shape, dtype, format);
          gpu->run_producing_op(op, got);
          expect_same_floats(gpu->to_host(got), want, 0.0, name + " as an op");

          ProbeRunOptions options;
          options.produce = op;
          ProbeRecord got_record, want_record;
          Tensor probed = gpu->empty(shape, dtype, format);
          run_probes_now(*gpu, parse_list(c.list), probed, got_record, options);
          cpu::run_probes(parse_list(c.list), want, want_record, ProbeRunOptions{});
          expect_same_floats(gpu->to_host(probed), want, 0.0, name + " in a probe run");
          expect_same_results(got_record.results, want_record.results, kRel, 0.0, name);
        }
}

}  // namespace
}  // namespace hookrt
