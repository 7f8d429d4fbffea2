// `hookrt run --device cuda` end to end: two hooked train steps on the GPU write the same
// stats.jsonl and captures.safetensors as on the CPU — the same records in the same order, counts
// equal, float figures and captured tensors within the whole-step tolerance. And `hookrt train
// --device cuda` profiles and halts like the CPU run. Skips where no GPU is usable.
//
// The GPU runs ask for `--no-tf32 --heuristic-conv --deterministic`: full F32 products and cuDNN's
// heuristic convolution algorithms, the ones every other GPU test uses (test_gpu_conv_algorithms
// holds the measured ones to them). The images are 64x64 so that layer4's batch norms normalise
// 8 values per channel (2 images of 2x2). At 32x32 they normalised 2 (1x1 each), which leaves
// every normalised value at +-1: the gradient through them is 0 in exact arithmetic, so what the
// backends computed upstream of layer4 was their rounding, magnified by 1/sigma, and the two
// differed by whole units.
// The learning rate is 0.01: at 0.05 the first step all but fits the batch of two, and the second
// step's gradients below layer4.1.bn2 are what is left of cancelling terms. There, on the CPU
// alone, a 1e-6 relative change of the input moves the second step's gradient records by up to
// 2% (the first step's by 1.3e-5), so the GPU's summation order (1.6e-3 at layer4.1.bn1's weight
// gradient, on an H100) failed a test that no kernel could pass. At 0.01 the same change moves
// the second step's records by 7e-5.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "hookrt/devices.h"
#include "hookrt/io.h"
#include "random.h"
#include "support/cli.h"
#include "support/temp_dir.h"

namespace hookrt {
namespace {

using Json = nlohmann::ordered_json;
using testing::hookrt_cli;

// What one run on `device` left in its --out folder.
struct DeviceRun {
  testing::TempDir out;
  testing::ProcessResult result;
  std::vector<Json> records;
  TensorMap captures;

  DeviceRun(const std::string& device, const std::string& input, const std::string& labels) {
    std::vector<std::string> args = {"run", "--num-classes", "5", "--input", input, "--labels", labels, "--mode",
                                     "train", "--steps", "2", "--lr", "0.01", "--momentum", "0.9", "--hook",
                                     "forward:*:stats,zeros,nonfinite", "--hook", "backward:layer3.*:stats",
                                     "--hook", "grad:*.weight:stats", "--hook", "forward:fc:capture", "--device",
                                     device, "--out", out.path().string(), "--quiet"};
    if (device == "cuda") args.insert(args.end(), {"--no-tf32", "--heuristic-conv", "--deterministic"});
    result = hookrt_cli(args);
    if (result.exit_code != 0) return;
    records = testing::parse_jsonl(testing::read_text(out.file("stats.jsonl")));
    captures = io::read_safetensors(out.file("captures.safetensors"));
  }
};

// Integers exactly, except zero counts: an activation within rounding of 0 may land on either side
// of a ReLU, so zeros and dead_channels may differ by a few. Floats within 1e-3 of the larger of
// the value and the record's scale (two train steps of fp32 summation-order noise, compounded
// through SGD: well above it, and well below what a wrong kernel gives).
void expect_same_json(const Json& gpu, const Json& cpu, double scale, const std::string& where) {
  ASSERT_EQ(gpu.type(), cpu.type()) << where << ": " << gpu.dump() << " vs " << cpu.dump();
  if (cpu.is_object()) {
    ASSERT_EQ(gpu.size(), cpu.size()) << where;
    for (auto it = cpu.begin(); it != cpu.end(); ++it) {
      ASSERT_TRUE(gpu.contains(it.key())) << where << ": no " << it.key();
      expect_same_json(gpu[it.key()], it.value(), scale, where + "." + it.key());
    }
  } else if (cpu.is_array()) {
    ASSERT_EQ(gpu.size(), cpu.size()) << where;
    for (size_t i = 0; i < cpu.size(); ++i) expect_same_json(gpu[i], cpu[i], scale, where + "[" + std::to_string(i) + "]");
  } else if (cpu.is_number_float()) {
    const double g = gpu.get<double>(), c = cpu.get<double>();
    EXPECT_NEAR(g, c, 1e-3 * std::max(std::abs(c), scale)) << where;
  } else if (cpu.is_number_integer() && (where.ends_with(".zeros") || where.ends_with(".dead_channels"))) {
    const double g = gpu.get<double>(), c = cpu.get<double>();
    EXPECT_LE(std::abs(g - c), std::max(2.0, 1e-3 * c)) << where;
  } else {
    EXPECT_EQ(gpu, cpu) << where;
  }
}

// Two train steps of a batch of 2 at 64x64, the GPU with TF32 off and heuristic, deterministic
// convolution algorithms (why: the top of the file).
TEST(CliGpu, TrainRunWritesTheCpuRunsRecordsAndCaptures) {
  const GpuScan scan = scan_gpus();
  if (!scan.problem.empty()) GTEST_SKIP() << "GPU test skipped: " << scan.problem;
  testing::TempDir data;
  Tensor x = Tensor::empty({2, 3, 64, 64});
  Pcg32 rng(77);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.normal());
  io::write_npy(data.file("x.npy"), x);
  io::write_npy(data.file("y.npy"), Tensor::from_vector(std::vector<int64_t>{4, 0}, {2}));

  const DeviceRun cpu("cpu", data.file("x.npy"), data.file("y.npy"));
  const DeviceRun gpu("cuda", data.file("x.npy"), data.file("y.npy"));
  ASSERT_EQ(cpu.result.exit_code, 0) << cpu.result.describe();
  ASSERT_EQ(gpu.result.exit_code, 0) << gpu.result.describe();
  ASSERT_EQ(gpu.records.size(), cpu.records.size());
  ASSERT_GT(cpu.records.size(), 2u * 76);
  for (size_t i = 0; i < cpu.records.size(); ++i) {
    const Json& c = cpu.records[i];
    // A record's own scale: its largest |value|, so near-zero means compare against it.
    double scale = 0;
    if (c.contains("stats") && c["stats"].contains("abs_max") && c["stats"]["abs_max"].is_number())
      scale = c["stats"]["abs_max"].get<double>();
    if (c.contains("abs_max") && c["abs_max"].is_number()) scale = c["abs_max"].get<double>();
    expect_same_json(gpu.records[i], c, scale, "record " + std::to_string(i));
  }
  ASSERT_EQ(gpu.captures.size(), cpu.captures.size());
  for (size_t k = 0; k < cpu.captures.size(); ++k) {
    const auto& [key, want] = cpu.captures[k];
    EXPECT_EQ(gpu.captures[k].first, key);
    const Tensor& got = gpu.captures[k].second;
    ASSERT_EQ(got.shape(), want.shape()) << key;
    double largest = 0, worst = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      largest = std::max<double>(largest, std::abs(want.data<float>()[i]));
      worst = std::max<double>(worst, std::abs(got.data<float>()[i] - want.data<float>()[i]));
    }
    EXPECT_LE(worst, 1e-3 * largest) << key;
  }
}

// `hookrt train --device cuda`: the profiler's records arrive in the CPU run's order (the same
// firings, module by module), a provoked explosion is flagged on the same step, and the halt
// policy stops the run with exit 3 after writing the report and the checkpoint.
TEST(CliGpu, TrainProfilesLikeTheCpuAndHaltsOnTheSameStep) {
  const GpuScan scan = scan_gpus();
  if (!scan.problem.empty()) GTEST_SKIP() << "GPU test skipped: " << scan.problem;
  auto train = [](const std::string& device, const testing::TempDir& out) {
    return hookrt_cli({"train", "--device", device, "--no-tf32", "--heuristic-conv", "--deterministic", "--steps",
                       "12", "--batch", "4", "--size", "32", "--images", "32", "--classes", "5", "--workers", "1",
                       "--lr", "0.02", "--lr-spike", "5:2000", "--policy", "halt", "--explosion-factor", "4",
                       "--explosion-min-history", "3", "--out", out.path().string(), "--quiet"});
  };
  const testing::TempDir cpu_out, gpu_out;
  const testing::ProcessResult cpu = train("cpu", cpu_out), gpu = train("cuda", gpu_out);
  ASSERT_EQ(cpu.exit_code, 3) << cpu.describe();
  ASSERT_EQ(gpu.exit_code, 3) << gpu.describe();
  const auto cpu_records = testing::parse_jsonl(testing::read_text(cpu_out.file("stats.jsonl")));
  const auto gpu_records = testing::parse_jsonl(testing::read_text(gpu_out.file("stats.jsonl")));
  ASSERT_EQ(gpu_records.size(), cpu_records.size());
  for (size_t i = 0; i < cpu_records.size(); ++i)
    for (const char* key : {"step", "when", "module", "call", "tensor"})
      ASSERT_EQ(gpu_records[i].value(key, Json()), cpu_records[i].value(key, Json())) << "record " << i << " " << key;
  auto halt_step = [](const testing::TempDir& out) {
    for (const Json& event : testing::parse_jsonl(testing::read_text(out.file("events.jsonl"))))
      if (event["event"] == "halt") return event["step"].get<int64_t>();
    return int64_t{-1};
  };
  EXPECT_EQ(halt_step(gpu_out), halt_step(cpu_out));
  EXPECT_TRUE(testing::contains(testing::read_text(gpu_out.file("report.html")), "</html>"));
  EXPECT_TRUE(std::filesystem::exists(gpu_out.file("checkpoint.safetensors")));
}

}  // namespace
}  // namespace hookrt
