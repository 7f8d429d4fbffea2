// The `hookrt` command line end to end (DESIGN.md "Command line" and "Errors and bad input"): each
// test runs the built program in its own process and checks its exit status, what it says, and
// the files it writes. Shapes are small (batch 2, 32x32 images, 5 classes) so a run takes about
// a second. gtest_discover_tests runs every test in its own process, so what tests share (the
// weights file, a batch, a run whose outputs several tests examine) is made on first use, once
// per process, and only by the tests that need it.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "hookrt/devices.h"
#include "hookrt/io.h"
#include "random.h"
#include "support/cli.h"
#include "support/run_process.h"
#include "support/temp_dir.h"

namespace hookrt {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using testing::ProcessResult;
using testing::contains;
using testing::hookrt_cli;
using testing::parse_jsonl;
using testing::read_text;
using testing::write_text;

constexpr int64_t kClasses = 5;

// ---- Helpers -------------------------------------------------------------------------------

std::vector<std::string> keys_of(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

// A seeded normal float32 batch of the given (N, C, H, W) shape.
Tensor seeded_batch(Shape shape) {
  Tensor x = Tensor::empty(shape);
  Pcg32 rng(2024);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.normal());
  return x;
}

// The batch most runs use, written once per test program: x.npy float32 [2, 3, 32, 32] and
// labels.npy int64 [1, 3].
struct SharedBatch {
  testing::TempDir dir;
  std::string input = dir.file("x.npy");
  std::string labels = dir.file("labels.npy");
  SharedBatch() {
    io::write_npy(input, seeded_batch({2, 3, 32, 32}));
    io::write_npy(labels, Tensor::from_vector(std::vector<int64_t>{1, 3}, {2}));
  }
};

const SharedBatch& batch() {
  static const SharedBatch shared;
  return shared;
}

// `hookrt init-weights --num-classes 5 --seed 0`, run once per test program (about a second:
// gtest_discover_tests runs every test in its own process, so only the tests that need a weights
// file ask for it; the others let `run` generate the same model with --num-classes 5).
struct SharedWeights {
  testing::TempDir dir;
  std::string path = dir.file("weights.safetensors");
  SharedWeights() {
    const ProcessResult init = hookrt_cli(
        {"init-weights", "--out", path, "--num-classes", std::to_string(kClasses), "--seed", "0"});
    if (init.exit_code != 0)
      throw std::runtime_error("hookrt init-weights failed: " + init.describe());
  }
};

const std::string& weights_file() {
  static const SharedWeights shared;
  return shared.path;
}

// `run` with a generated 5-class model on the shared batch, plus the given arguments.
ProcessResult run_generated_model(std::vector<std::string> extra) {
  std::vector<std::string> args = {"run", "--num-classes", std::to_string(kClasses), "--input",
                                   batch().input};
  args.insert(args.end(), extra.begin(), extra.end());
  return hookrt_cli(args);
}

// ---- hookrt info ---------------------------------------------------------------------------

TEST(CliInfo, ExitsZeroAndSaysWhetherCudaIsCompiledInAndWhatAutoPicks) {
  const ProcessResult info = hookrt_cli({"info"});
  ASSERT_EQ(info.exit_code, 0) << info.describe();
  const std::string cuda_line =
      build_info().cuda_compiled ? "CUDA compiled in: yes" : "CUDA compiled in: no";
  EXPECT_TRUE(contains(info.out, cuda_line)) << "expected '" << cuda_line << "' in:\n" << info.out;
  const BackendSelection automatic = select_backend(DeviceChoice::Auto);
  EXPECT_TRUE(contains(info.out, "--device auto") &&
              contains(info.out, automatic.backend->name()) && contains(info.out, automatic.reason))
      << "info should say that auto picks " << automatic.backend->name() << " because "
      << automatic.reason << ":\n"
      << info.out;
}

// ---- hookrt init-weights -------------------------------------------------------------------

// torchvision.models.resnet18(num_classes).state_dict()'s 122 keys and shapes, written out from
// the architecture rather than taken from hookrt's model, so the file is held to torchvision.
std::map<std::string, Shape> torchvision_resnet18_state(int64_t classes) {
  std::map<std::string, Shape> state;
  auto batchnorm = [&](const std::string& name, int64_t channels) {
    for (const char* field : {".weight", ".bias", ".running_mean", ".running_var"})
      state[name + field] = {channels};
    state[name + ".num_batches_tracked"] = {};  // a 0-d tensor in PyTorch
  };
  state["conv1.weight"] = {64, 3, 7, 7};
  batchnorm("bn1", 64);
  int64_t in = 64;
  for (int layer = 1; layer <= 4; ++layer) {
    const int64_t out = int64_t{64} << (layer - 1);
    for (int block = 0; block < 2; ++block) {
      const std::string name = "layer" + std::to_string(layer) + "." + std::to_string(block);
      state[name + ".conv1.weight"] = {out, block == 0 ? in : out, 3, 3};
      batchnorm(name + ".bn1", out);
      state[name + ".conv2.weight"] = {out, out, 3, 3};
      batchnorm(name + ".bn2", out);
      if (block == 0 && layer > 1) {
        state[name + ".downsample.0.weight"] = {out, in, 1, 1};
        batchnorm(name + ".downsample.1", out);
      }
    }
    in = out;
  }
  state["fc.weight"] = {classes, 512};
  state["fc.bias"] = {classes};
  return state;
}

TEST(CliInitWeights, WritesTheTorchvisionStateDictWithTheRequestedClassCount) {
  const std::map<std::string, Shape> expected = torchvision_resnet18_state(kClasses);
  ASSERT_EQ(expected.size(), 122u) << "the oracle itself must list resnet18's 122 state_dict keys";
  const TensorMap state = io::read_safetensors(weights_file());
  std::map<std::string, Shape> written;
  for (const auto& [key, tensor] : state) {
    written[key] = tensor.shape();
    const DType want = key.ends_with("num_batches_tracked") ? DType::I64 : DType::F32;
    EXPECT_EQ(dtype_name(tensor.dtype()), dtype_name(want)) << key;
  }
  EXPECT_EQ(state.size(), 122u) << "one tensor per key, no duplicates";
  EXPECT_EQ(written, expected) << "keys and shapes must be torchvision's (fc sized for " << kClasses
                               << " classes)";
}

TEST(CliInitWeights, SameSeedWritesIdenticalBytes) {
  testing::TempDir dir;
  const ProcessResult again =
      hookrt_cli({"init-weights", "--out", dir.file("again.safetensors"), "--num-classes",
                  std::to_string(kClasses), "--seed", "0"});
  ASSERT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_TRUE(read_text(dir.file("again.safetensors")) == read_text(weights_file()))
      << "init-weights with the same seed must be reproducible byte for byte";
}

Tensor conv1_weight(const TensorMap& state) {
  for (const auto& [key, tensor] : state)
    if (key == "conv1.weight") return tensor;
  ADD_FAILURE() << "conv1.weight missing";
  return Tensor::zeros({1});
}

TEST(CliInitWeights, DifferentSeedWritesDifferentWeights) {
  testing::TempDir dir;
  const ProcessResult other =
      hookrt_cli({"init-weights", "--out", dir.file("seed1.safetensors"), "--num-classes",
                  std::to_string(kClasses), "--seed", "1"});
  ASSERT_EQ(other.exit_code, 0) << other.describe();
  const Tensor seed0 = conv1_weight(io::read_safetensors(weights_file()));
  const Tensor seed1 = conv1_weight(io::read_safetensors(dir.file("seed1.safetensors")));
  ASSERT_EQ(seed0.nbytes(), seed1.nbytes());
  EXPECT_NE(std::memcmp(seed0.raw_data(), seed1.raw_data(), seed0.nbytes()), 0)
      << "seed 1 must draw different conv1 weights from seed 0";
}

// ---- hookrt run: the files a hooked run writes --------------------------------------------

// What one `run --out DIR` left behind: its result, stats.jsonl parsed, captures.safetensors read.
struct RunWithOutputs {
  testing::TempDir out;
  ProcessResult result;
  std::vector<Json> records;
  TensorMap captures;

  explicit RunWithOutputs(std::vector<std::string> args) {
    args.insert(args.end(), {"--device", "cpu", "--out", out.path().string()});
    result = hookrt_cli(args);
    if (result.exit_code != 0) return;
    records = parse_jsonl(read_text(out.file("stats.jsonl")));
    if (std::filesystem::exists(out.file("captures.safetensors")))
      captures = io::read_safetensors(out.file("captures.safetensors"));
  }
  const Tensor* capture(const std::string& key) const {
    for (const auto& [name, tensor] : captures)
      if (name == key) return &tensor;
    return nullptr;
  }
};

// One training step from weights, input and labels files, with observing probes on forward,
// backward and grad events.
const RunWithOutputs& hooked_training_step() {
  static const RunWithOutputs run(
      {"run", "--weights", weights_file(), "--input", batch().input, "--labels", batch().labels,
       "--mode", "train", "--hook", "forward:layer1.*.conv*:stats,zeros", "--hook",
       "forward:fc:hist=8:-4:4", "--hook", "backward:layer4.1.conv2:stats", "--hook",
       "grad:*.weight:stats"});
  return run;
}

// One training step capturing a module called twice (relu), a backward pair and a parameter's
// gradient.
const RunWithOutputs& capturing_training_step() {
  static const RunWithOutputs run(
      {"run", "--num-classes", std::to_string(kClasses), "--input", batch().input, "--labels",
       batch().labels, "--mode", "train", "--hook", "forward:layer1.0.relu:capture", "--hook",
       "backward:layer4.1.conv2:capture", "--hook", "grad:fc.bias:capture"});
  return run;
}

// Three inference steps (forward only, so cheap) capturing the root's output and describing fc's.
const RunWithOutputs& three_inference_steps() {
  static const RunWithOutputs run({"run", "--num-classes", std::to_string(kClasses), "--input",
                                   batch().input, "--steps", "3", "--hook", "forward::capture",
                                   "--hook", "forward:fc:stats"});
  return run;
}

// Tests that examine the outputs of one shared run; each fails at once if that run failed.
template <const RunWithOutputs& (*shared_run)()>
class TestsOnTheOutputsOf : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(run().result.exit_code, 0) << run().result.describe(); }
  const RunWithOutputs& run() const { return shared_run(); }
};

using CliStats = TestsOnTheOutputsOf<hooked_training_step>;

TEST_F(CliStats, RunPrintsTheSummaryTable) {
  const std::string& out = run().result.out;
  EXPECT_TRUE(contains(out, "module / parameter") && contains(out, "layer1.0.conv1") &&
              contains(out, "fc.weight"))
      << "the table has a header and a row per hooked site:\n"
      << out;
}

TEST_F(CliStats, LinesStartWithTheDocumentedFieldsInOrder) {
  ASSERT_FALSE(run().records.empty());
  for (const Json& record : run().records) {
    const bool grad = record.value("when", "") == "grad";
    std::vector<std::string> header = {"step", "when", "module", "call", "tensor", "shape"};
    if (grad) header.insert(header.begin() + 4, "param");
    const std::vector<std::string> keys = keys_of(record);
    ASSERT_GE(keys.size(), header.size()) << record.dump();
    EXPECT_EQ(
        std::vector<std::string>(keys.begin(), keys.begin() + static_cast<long>(header.size())),
        header)
        << "DESIGN.md: `step when module call tensor shape` (`param` for grad events): "
        << record.dump();
    if (!grad) EXPECT_FALSE(record.contains("param")) << record.dump();
  }
}

TEST_F(CliStats, StatsAndZerosFieldsFollowTheHeader) {
  int seen = 0;
  for (const Json& record : run().records) {
    if (record["when"] != "forward" || record["module"] != "layer1.0.conv1") continue;
    ++seen;
    EXPECT_EQ(record["tensor"], "output");
    EXPECT_EQ(record["shape"], Json({2, 64, 8, 8}))
        << "32x32 input: stride-2 conv1 and maxpool leave 8x8";
    EXPECT_EQ(record["count"], 2 * 64 * 8 * 8)
        << "a finite input gives a finite output: every element counts";
    for (const char* field : {"min", "max", "mean", "std", "abs_max", "l1", "l2", "nan", "posinf",
                              "neginf", "zeros", "zero_fraction", "channels", "dead_channels"})
      EXPECT_TRUE(record.contains(field)) << field << " missing: " << record.dump();
  }
  EXPECT_EQ(seen, 1) << "one layer1.0.conv1 record in one step";
}

TEST_F(CliStats, HistogramCountsEveryElementOfItsTensor) {
  int seen = 0;
  for (const Json& record : run().records) {
    if (record["when"] != "forward" || record["module"] != "fc") continue;
    ++seen;
    const Json& hist = record["hist"];
    ASSERT_EQ(hist["counts"].size(), 8u) << record.dump();
    int64_t total = hist["below"].get<int64_t>() + hist["above"].get<int64_t>();
    for (const Json& count : hist["counts"]) total += count.get<int64_t>();
    EXPECT_EQ(total, 2 * kClasses)
        << "bins + below + above cover the [2, 5] logits exactly once: " << record.dump();
  }
  EXPECT_EQ(seen, 1);
}

TEST_F(CliStats, BackwardRecordsDescribeGradInputAndGradOutput) {
  std::set<std::string> tensors;
  for (const Json& record : run().records)
    if (record["when"] == "backward") tensors.insert(record["tensor"].get<std::string>());
  EXPECT_EQ(tensors, (std::set<std::string>{"grad_input", "grad_output"}))
      << "DESIGN.md: observing probes on backward report each tensor as its own record";
}

TEST_F(CliStats, GradEventsNameTheParameterAndItsModule) {
  std::set<std::string> params;
  for (const Json& record : run().records) {
    if (record["when"] != "grad") continue;
    const std::string param = record["param"], module = record["module"];
    params.insert(param);
    EXPECT_EQ(record["tensor"], "grad") << record.dump();
    EXPECT_EQ(param, module + ".weight") << "module is the parameter's owner: " << record.dump();
  }
  // grad:*.weight matches every conv, batchnorm and linear weight: 20 + 20 + 1.
  EXPECT_EQ(params.size(), 41u);
  EXPECT_TRUE(params.count("conv1.weight") && params.count("layer3.0.downsample.0.weight") &&
              params.count("fc.weight"));
}

using CliCaptures = TestsOnTheOutputsOf<capturing_training_step>;

TEST_F(CliCaptures, KeysFollowTheDocumentedPattern) {
  const std::regex pattern(
      R"(step[0-9]+/(forward_pre|forward|backward_pre|backward|grad)/[^/]*(#[0-9]+)?/)"
      R"((input|output|grad_input|grad_output|grad))");
  for (const auto& [key, tensor] : run().captures)
    EXPECT_TRUE(std::regex_match(key, pattern))
        << key << " is not step{S}/{when}/{module}[#k]/{tensor}";
  const std::set<std::string> expected = {
      "step0/forward/layer1.0.relu/output",
      "step0/forward/layer1.0.relu#1/output",  // relu is called twice
      "step0/backward/layer4.1.conv2/grad_input", "step0/backward/layer4.1.conv2/grad_output",
      "step0/grad/fc.bias/grad"};
  std::set<std::string> keys;
  for (const auto& [key, tensor] : run().captures) keys.insert(key);
  EXPECT_EQ(keys, expected);
}

TEST_F(CliCaptures, EveryCaptureNamedInStatsIsInTheFileWithItsShape) {
  int named = 0;
  for (const Json& record : run().records) {
    if (!record.contains("capture")) continue;
    ++named;
    const Tensor* captured = run().capture(record["capture"]);
    ASSERT_NE(captured, nullptr) << record.dump();
    EXPECT_EQ(Json(captured->shape()), record["shape"]) << record.dump();
  }
  EXPECT_EQ(named, static_cast<int>(run().captures.size()));
}

using CliSteps = TestsOnTheOutputsOf<three_inference_steps>;

TEST_F(CliSteps, ThreeStepsAreNumberedZeroToTwoInRecordsAndCaptures) {
  std::map<int64_t, int> per_step;
  for (const Json& record : run().records) ++per_step[record["step"].get<int64_t>()];
  EXPECT_EQ(per_step, (std::map<int64_t, int>{{0, 2}, {1, 2}, {2, 2}}))
      << "two hooks fire once per step";
  for (const char* key :
       {"step0/forward//output", "step1/forward//output", "step2/forward//output"})
    EXPECT_NE(run().capture(key), nullptr) << key << " missing from captures.safetensors";
  EXPECT_EQ(run().captures.size(), 3u);
}

TEST_F(CliSteps, RootForwardCaptureOfTheLastStepEqualsTheLogitsFile) {
  const Tensor* captured = run().capture("step2/forward//output");
  ASSERT_NE(captured, nullptr);
  const Tensor logits = io::read_npy(run().out.file("logits.npy"));
  ASSERT_EQ(captured->shape(), (Shape{2, kClasses}));
  ASSERT_EQ(logits.shape(), captured->shape());
  EXPECT_EQ(std::memcmp(logits.raw_data(), captured->raw_data(), logits.nbytes()), 0)
      << "the root's output is the logits: bit-identical copies, no tolerance";
}

// ---- hookrt run: --save-weights and --input-grad ------------------------------------------

TEST(CliOutputs, SaveWeightsWritesTheStateAfterTheTrainStep) {
  testing::TempDir out;
  const std::string saved = out.file("trained.safetensors");
  const ProcessResult result = hookrt_cli({"run", "--weights", weights_file(), "--input", batch().input, "--labels",
                                           batch().labels, "--mode", "train", "--lr", "0.1", "--quiet",
                                           "--save-weights", saved});
  ASSERT_EQ(result.exit_code, 0) << result.describe();
  const TensorMap before = io::read_safetensors(weights_file());
  const TensorMap after = io::read_safetensors(saved);
  ASSERT_EQ(after.size(), before.size()) << "every state_dict key is saved";
  std::map<std::string, Tensor> saved_state(after.begin(), after.end());
  EXPECT_EQ(saved_state.at("bn1.num_batches_tracked").item(), 1.0) << "one train step was counted";
  const Tensor w0 = conv1_weight(before);
  const Tensor& w1 = saved_state.at("conv1.weight");
  ASSERT_EQ(w1.shape(), w0.shape());
  EXPECT_NE(std::memcmp(w0.raw_data(), w1.raw_data(), w0.nbytes()), 0) << "SGD moved conv1.weight";
}

TEST(CliOutputs, InputGradWritesTheGradientOfTheInput) {
  testing::TempDir out;
  const ProcessResult result = run_generated_model(
      {"--labels", batch().labels, "--input-grad", "--quiet", "--out", out.path().string()});
  ASSERT_EQ(result.exit_code, 0) << result.describe();
  const Tensor grad = io::read_npy(out.file("input_grad.npy"));
  EXPECT_EQ(grad.shape(), Shape({2, 3, 32, 32})) << "the input's gradient has the input's shape";
  double l1 = 0;
  for (int64_t i = 0; i < grad.numel(); ++i) l1 += std::abs(grad.item(i));
  EXPECT_GT(l1, 0.0) << "the loss depends on the input";
}

// --precision bf16 runs the model as torch.autocast(dtype=torch.bfloat16) would: the tensors the
// hooks see are BF16, and what the run writes besides them (logits, weights) stays F32.
TEST(CliOutputs, Bf16PrecisionCapturesBf16TensorsAndWritesF32LogitsAndWeights) {
  testing::TempDir out;
  const std::string saved = out.file("after.safetensors");
  const ProcessResult result = run_generated_model(
      {"--labels", batch().labels, "--mode", "train", "--precision", "bf16", "--hook", "forward:layer1.0.conv1:capture",
       "--quiet", "--out", out.path().string(), "--save-weights", saved});
  ASSERT_EQ(result.exit_code, 0) << result.describe();
  const Tensor logits = io::read_npy(out.file("logits.npy"));
  EXPECT_EQ(logits.dtype(), DType::F32);
  EXPECT_EQ(logits.shape(), Shape({2, kClasses}));
  const TensorMap captures = io::read_safetensors(out.file("captures.safetensors"));
  ASSERT_EQ(captures.size(), 1u);
  EXPECT_EQ(captures[0].second.dtype(), DType::BF16) << captures[0].first;
  for (const auto& [key, t] : io::read_safetensors(saved))
    if (!key.ends_with("num_batches_tracked")) EXPECT_EQ(t.dtype(), DType::F32) << key;
}

// A channels-last step is the NCHW step, bit for bit on the CPU: the same logits and captures.
TEST(CliOutputs, ChannelsLastMemoryFormatWritesWhatContiguousWrites) {
  std::map<std::string, std::string> logits_bytes, capture_bytes;
  for (const std::string format : {"contiguous", "channels_last"}) {
    testing::TempDir out;
    const ProcessResult result = run_generated_model(
        {"--labels", batch().labels, "--mode", "train", "--memory-format", format, "--hook",
         "forward:layer1.0.conv1:capture", "--quiet", "--out", out.path().string()});
    ASSERT_EQ(result.exit_code, 0) << result.describe();
    logits_bytes[format] = read_text(out.file("logits.npy"));
    capture_bytes[format] = read_text(out.file("captures.safetensors"));
  }
  EXPECT_EQ(logits_bytes["channels_last"], logits_bytes["contiguous"]);
  EXPECT_EQ(capture_bytes["channels_last"], capture_bytes["contiguous"]) << "captures are NCHW either way";
}

// ---- Bad input: exit 2, and the message names the culprit ---------------------------------

// Files that are wrong in one way each, written in the test's own directory.
struct BadFiles {
  testing::TempDir dir;
  BadFiles() {
    write_text(dir.file("truncated.safetensors"), truncated_weights());
    std::string random_bytes(4096, '\0');
    Pcg32 rng(99);
    for (char& byte : random_bytes) byte = static_cast<char>(rng.next_u32());
    write_text(dir.file("garbage.safetensors"), random_bytes);
    // A plausible 16-byte header length followed by text that is not JSON.
    write_text(dir.file("bad_header.safetensors"),
               std::string("\x10\0\0\0\0\0\0\0", 8) + "this is not json");
    const Tensor x = seeded_batch({2, 3, 32, 32});
    io::write_npy(dir.file("x_f64.npy"), x.to(DType::F64));
    io::write_npy(dir.file("x_2ch.npy"), seeded_batch({2, 2, 32, 32}));
    io::write_npy(dir.file("labels_out_of_range.npy"),
                  Tensor::from_vector(std::vector<int64_t>{1, kClasses}, {2}));
    io::write_npy(dir.file("labels_three.npy"),
                  Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3}));
  }
  // The first 1000 bytes of a 10 KB safetensors file: its header promises data that is not there.
  static std::string truncated_weights() {
    const TensorMap small = {{"fc.weight", Tensor::zeros({kClasses, 512})}};
    testing::TempDir scratch;
    io::write_safetensors(scratch.file("w.safetensors"), small);
    return read_text(scratch.file("w.safetensors")).substr(0, 1000);
  }
  // Expensive (a resnet18 state_dict), so only the case that needs it writes it.
  void write_weights_missing(const std::string& key) const {
    TensorMap state = Model::resnet18(kClasses, 0).state_dict();
    std::erase_if(state, [&](const auto& entry) { return entry.first == key; });
    io::write_safetensors(dir.file("missing_key.safetensors"), state);
  }
};

// Arguments and expected culprits; "@/" stands for the BadFiles directory, "@x" for the shared
// batch.
struct BadInputCase {
  std::string name;
  std::vector<std::string> args;
  std::vector<std::string> culprits;  // each must appear in stderr
};

void PrintTo(const BadInputCase& c, std::ostream* out) { *out << c.name; }

class CliBadInput : public ::testing::TestWithParam<BadInputCase> {
 protected:
  std::string expand(const std::string& text) const {
    if (text == "@x") return batch().input;
    return text.starts_with("@/") ? bad_.dir.file(text.substr(2)) : text;
  }
  BadFiles bad_;
};

TEST_P(CliBadInput, ExitsWithStatus2NamingTheCulprit) {
  if (GetParam().name == "WeightsMissingAKey")
    bad_.write_weights_missing("layer3.1.bn2.running_var");
  std::vector<std::string> args;
  for (const std::string& arg : GetParam().args) args.push_back(expand(arg));
  const ProcessResult result = hookrt_cli(args);
  EXPECT_EQ(result.exit_code, 2) << "DESIGN.md: 2 is bad usage or bad input; " << result.describe();
  for (const std::string& culprit : GetParam().culprits)
    EXPECT_TRUE(contains(result.err, expand(culprit)))
        << "stderr should name '" << expand(culprit) << "':\n"
        << result.err;
}

// `run` on weights W and input X (a generated 5-class model when W is empty), then `more`.
std::vector<std::string> run_args(const std::string& weights, const std::string& input,
                                  std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"run", "--input", input, "--device", "cpu"};
  if (weights.empty())
    args.insert(args.end(), {"--num-classes", std::to_string(kClasses)});
  else
    args.insert(args.end(), {"--weights", weights});
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<std::string> hook(const std::string& spec) { return {"--hook", spec}; }

INSTANTIATE_TEST_SUITE_P(
    Cases, CliBadInput,
    ::testing::Values(
        BadInputCase{
            "MissingWeightsFile", run_args("@/absent.safetensors", "@x"), {"@/absent.safetensors"}},
        BadInputCase{"TruncatedWeights",
                     run_args("@/truncated.safetensors", "@x"),
                     {"@/truncated.safetensors"}},
        BadInputCase{"RandomBytesAsWeights",
                     run_args("@/garbage.safetensors", "@x"),
                     {"@/garbage.safetensors"}},
        BadInputCase{"WeightsHeaderNotJson",
                     run_args("@/bad_header.safetensors", "@x"),
                     {"@/bad_header.safetensors"}},
        BadInputCase{"WeightsMissingAKey",
                     run_args("@/missing_key.safetensors", "@x"),
                     {"@/missing_key.safetensors", "layer3.1.bn2.running_var"}},
        BadInputCase{"MissingInputFile", run_args("", "@/absent.npy"), {"@/absent.npy"}},
        BadInputCase{"InputOfDtypeFloat64", run_args("", "@/x_f64.npy"), {"@/x_f64.npy"}},
        BadInputCase{"InputWithTwoChannels", run_args("", "@/x_2ch.npy"), {"@/x_2ch.npy"}},
        BadInputCase{"LabelOutOfRange",
                     run_args("", "@x", {"--labels", "@/labels_out_of_range.npy"}),
                     {"@/labels_out_of_range.npy"}},
        BadInputCase{"LabelCountNotBatchSize",
                     run_args("", "@x", {"--labels", "@/labels_three.npy"}),
                     {"@/labels_three.npy"}},
        BadInputCase{"SelectorMatchingNothing",
                     run_args("", "@x", hook("forward:layer9.*:stats")),
                     {"layer9.*"}},
        BadInputCase{
            "UnknownProbe", run_args("", "@x", hook("forward:conv1:stats,bogus")), {"bogus"}},
        BadInputCase{
            "UnknownEvent", run_args("", "@x", hook("sideways:conv1:stats")), {"sideways"}},
        BadInputCase{
            "HistWithoutRange", run_args("", "@x", hook("forward:conv1:hist=8")), {"hist=8"}},
        BadInputCase{"HistWithReversedRange",
                     run_args("", "@x", hook("forward:conv1:hist=8:1:-1")),
                     {"hist=8:1:-1"}},
        BadInputCase{"UnknownFlag", run_args("", "@x", {"--frobnicate"}), {"--frobnicate"}},
        BadInputCase{"UnknownPrecision", run_args("", "@x", {"--precision", "fp8"}), {"--precision", "fp8"}},
        BadInputCase{"UnknownMemoryFormat", run_args("", "@x", {"--memory-format", "nhwc"}), {"--memory-format", "nhwc"}},
        BadInputCase{"UnknownLossScale", run_args("", "@x", {"--loss-scale", "huge"}), {"loss scaling", "huge"}},
        BadInputCase{"NegativeLossScale", run_args("", "@x", {"--loss-scale", "-4"}), {"loss scaling", "-4"}},
        BadInputCase{"LossScaleInEvalMode", run_args("", "@x", {"--mode", "eval", "--loss-scale", "1024"}),
                     {"--loss-scale 1024", "--mode eval"}},
        BadInputCase{"LossScaleF32RoundsToZero", run_args("", "@x", {"--loss-scale", "1e-50"}), {"loss scaling", "1e-50"}},
        // NaN compares false with any bound: it must still be refused, not train to NaN weights.
        BadInputCase{"NanLearningRate", run_args("", "@x", {"--lr", "nan"}), {"--lr", "a finite number >= 0", "nan"}},
        BadInputCase{"InfiniteMomentum", run_args("", "@x", {"--momentum", "inf"}), {"--momentum", "inf"}},
        BadInputCase{"ZeroSteps", run_args("", "@x", {"--steps", "0"}), {"--steps", "a whole number, at least 1", "0"}},
        BadInputCase{"FractionalSteps", run_args("", "@x", {"--steps", "1.5"}), {"--steps", "1.5"}},
        BadInputCase{"ZeroBatchForBench", {"bench", "--device", "cpu", "--batch", "0"}, {"--batch", "at least 1"}},
        BadInputCase{"NegativeWarmupForBench", {"bench", "--device", "cpu", "--warmup", "-1"}, {"--warmup", "at least 0"}},
        BadInputCase{"NegativeCheckpointInterval", {"train", "--device", "cpu", "--checkpoint-every", "-1"},
                     {"--checkpoint-every", "-1"}},
        BadInputCase{"NanExplosionFactor", {"train", "--device", "cpu", "--explosion-factor", "nan"},
                     {"--explosion-factor", "a finite number > 0"}},
        BadInputCase{"ZeroClassesForInitWeights", {"init-weights", "--num-classes", "0", "--out", "w.safetensors"},
                     {"--num-classes", "at least 1"}},
        BadInputCase{"UnknownDevice",
                     {"run", "--num-classes", "5", "--input", "@x", "--device", "tpu"},
                     {"--device", "tpu"}}),
    [](const ::testing::TestParamInfo<BadInputCase>& info) { return info.param.name; });

// ---- --device ------------------------------------------------------------------------------

TEST(CliDevice, CudaWithoutAUsableGpuExitsWith1SayingWhy) {
  std::string why;
  try {
    select_backend(DeviceChoice::Cuda);
    GTEST_SKIP() << "a CUDA device is usable in this build: --device cuda is no error here";
  } catch (const Error& error) {
    why = error.what();
  }
  const ProcessResult result = run_generated_model({"--device", "cuda", "--quiet"});
  EXPECT_EQ(result.exit_code, 1) << "no GPU is a failure, not bad usage; " << result.describe();
  EXPECT_TRUE(contains(result.err, why))
      << "stderr should say why there is no CUDA backend (" << why << "):\n"
      << result.err;
}

TEST(CliDevice, AutoRunsAndNotesItsChoiceOnStderr) {
  const BackendSelection automatic = select_backend(DeviceChoice::Auto);
  const ProcessResult result = run_generated_model({"--device", "auto", "--quiet"});
  EXPECT_EQ(result.exit_code, 0) << result.describe();
  EXPECT_TRUE(contains(result.err, "note") && contains(result.err, automatic.reason))
      << "stderr should note what auto chose and why (" << automatic.reason << "):\n"
      << result.err;
}

// ---- Stopping early: records delivered before the stop are kept ---------------------------

TEST(CliHalt, NonFiniteHaltExitsWith1NamingTheModuleAndKeepsItsRecords) {
  testing::TempDir dir;
  Tensor x = seeded_batch({2, 3, 32, 32});
  x.data<float>()[((1 * 3 + 2) * 32 + 5) * 32 + 5] = std::nanf("");  // x[1, 2, 5, 5]
  io::write_npy(dir.file("x_nan.npy"), x);
  const ProcessResult result =
      hookrt_cli({"run", "--num-classes", std::to_string(kClasses), "--input",
                  dir.file("x_nan.npy"), "--device", "cpu", "--out", dir.file("out"), "--hook",
                  "forward_pre:conv1:stats", "--hook", "forward:conv1:nonfinite=halt"});
  EXPECT_EQ(result.exit_code, 1) << "a halt is 'any other failure'; " << result.describe();
  EXPECT_TRUE(contains(result.err, "conv1")) << "the message should name the module:\n"
                                             << result.err;

  const std::vector<Json> records = parse_jsonl(read_text(dir.file("out/stats.jsonl")));
  ASSERT_EQ(records.size(), 2u)
      << "the input's stats and conv1's nonfinite record were delivered before the halt";
  EXPECT_EQ(records[0]["when"], "forward_pre");
  EXPECT_EQ(records[0]["nan"], 1) << records[0].dump();
  EXPECT_EQ(records[1]["module"], "conv1");
  // The NaN at x[1, 2, 5, 5] lies in the 7x7 stride-2 pad-3 window of output rows and columns 1..4:
  // 4 x 4 positions x 64 channels of sample 1.
  EXPECT_EQ(records[1]["nan"], 4 * 4 * 64) << records[1].dump();
}

// The lines of a file that are complete (end in a newline), as another process sees them now.
std::vector<std::string> complete_lines(const std::string& path) {
  const std::string text = read_text(path);
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    lines.push_back(text.substr(begin, end - begin));
  return lines;
}

TEST(CliInterrupt, SigintExits130WithCompleteRecordsAndReadableCaptures) {
  testing::TempDir out;
  const std::string stats = out.file("stats.jsonl");
  testing::ChildProcess child({HOOKRT_CLI_PATH, "run",
                               "--num-classes", std::to_string(kClasses),
                               "--input",       batch().input,
                               "--labels",      batch().labels,
                               "--mode",        "train",
                               "--device",      "cpu",
                               "--steps",       "50",
                               "--out",         out.path().string(),
                               "--hook",        "forward:@Conv2d:stats",
                               "--hook",        "forward::capture"});
  const auto deadline = std::chrono::steady_clock::now() + testing::kCliTimeout;
  while (complete_lines(stats).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_FALSE(complete_lines(stats).empty())
      << "no step-0 record within the timeout; " << child.wait(1ms).describe();

  child.send_signal(SIGINT);
  const auto signalled = std::chrono::steady_clock::now();
  const ProcessResult result = child.wait(60s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count();
  EXPECT_EQ(result.exit_code, 130) << result.describe();
  // A step here takes about a second; an interrupted run finishes at most the step it is in.
  EXPECT_LT(seconds, 20.0) << "SIGINT should stop the run within a few seconds";

  const std::string text = read_text(stats);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "the last line of stats.jsonl is cut off";
  const std::vector<Json> records = parse_jsonl(text);
  ASSERT_FALSE(records.empty());
  EXPECT_LT(records.back()["step"].get<int64_t>(), 49) << "the run should have stopped early";
  const TensorMap captures = io::read_safetensors(out.file("captures.safetensors"));
  std::set<std::string> keys;
  for (const auto& [key, tensor] : captures) keys.insert(key);
  for (const Json& record : records)
    if (record.contains("capture"))
      EXPECT_TRUE(keys.count(record["capture"]))
          << "a capture named in stats.jsonl is missing: " << record.dump();
}

}  // namespace
}  // namespace hookrt
