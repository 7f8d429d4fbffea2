// The model graph and its training semantics on the CPU backend: torchvision's module tree and
// state_dict (the expected lists below were printed by torchvision 0.14's resnet18(num_classes=5)),
// torchvision's initialisation, load_state_dict's checks, BatchNorm's running statistics,
// determinism and the executor's input checks.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "hookrt/executor.h"
#include "hookrt/model.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::bad_input_message;
using testing::TinyModelTest;

// [(path, kind) for path, kind in torchvision.models.resnet18(num_classes=5).named_modules()]
// clang-format off
const std::vector<std::pair<std::string, ModuleKind>> kTorchvisionModules = {
  {"", ModuleKind::ResNet}, {"conv1", ModuleKind::Conv2d}, {"bn1", ModuleKind::BatchNorm2d},
  {"relu", ModuleKind::ReLU}, {"maxpool", ModuleKind::MaxPool2d},
  {"layer1", ModuleKind::Sequential}, {"layer1.0", ModuleKind::BasicBlock},
  {"layer1.0.conv1", ModuleKind::Conv2d}, {"layer1.0.bn1", ModuleKind::BatchNorm2d},
  {"layer1.0.relu", ModuleKind::ReLU}, {"layer1.0.conv2", ModuleKind::Conv2d},
  {"layer1.0.bn2", ModuleKind::BatchNorm2d}, {"layer1.1", ModuleKind::BasicBlock},
  {"layer1.1.conv1", ModuleKind::Conv2d}, {"layer1.1.bn1", ModuleKind::BatchNorm2d},
  {"layer1.1.relu", ModuleKind::ReLU}, {"layer1.1.conv2", ModuleKind::Conv2d},
  {"layer1.1.bn2", ModuleKind::BatchNorm2d}, {"layer2", ModuleKind::Sequential},
  {"layer2.0", ModuleKind::BasicBlock}, {"layer2.0.conv1", ModuleKind::Conv2d},
  {"layer2.0.bn1", ModuleKind::BatchNorm2d}, {"layer2.0.relu", ModuleKind::ReLU},
  {"layer2.0.conv2", ModuleKind::Conv2d}, {"layer2.0.bn2", ModuleKind::BatchNorm2d},
  {"layer2.0.downsample", ModuleKind::Sequential}, {"layer2.0.downsample.0", ModuleKind::Conv2d},
  {"layer2.0.downsample.1", ModuleKind::BatchNorm2d}, {"layer2.1", ModuleKind::BasicBlock},
  {"layer2.1.conv1", ModuleKind::Conv2d}, {"layer2.1.bn1", ModuleKind::BatchNorm2d},
  {"layer2.1.relu", ModuleKind::ReLU}, {"layer2.1.conv2", ModuleKind::Conv2d},
  {"layer2.1.bn2", ModuleKind::BatchNorm2d}, {"layer3", ModuleKind::Sequential},
  {"layer3.0", ModuleKind::BasicBlock}, {"layer3.0.conv1", ModuleKind::Conv2d},
  {"layer3.0.bn1", ModuleKind::BatchNorm2d}, {"layer3.0.relu", ModuleKind::ReLU},
  {"layer3.0.conv2", ModuleKind::Conv2d}, {"layer3.0.bn2", ModuleKind::BatchNorm2d},
  {"layer3.0.downsample", ModuleKind::Sequential}, {"layer3.0.downsample.0", ModuleKind::Conv2d},
  {"layer3.0.downsample.1", ModuleKind::BatchNorm2d}, {"layer3.1", ModuleKind::BasicBlock},
  {"layer3.1.conv1", ModuleKind::Conv2d}, {"layer3.1.bn1", ModuleKind::BatchNorm2d},
  {"layer3.1.relu", ModuleKind::ReLU}, {"layer3.1.conv2", ModuleKind::Conv2d},
  {"layer3.1.bn2", ModuleKind::BatchNorm2d}, {"layer4", ModuleKind::Sequential},
  {"layer4.0", ModuleKind::BasicBlock}, {"layer4.0.conv1", ModuleKind::Conv2d},
  {"layer4.0.bn1", ModuleKind::BatchNorm2d}, {"layer4.0.relu", ModuleKind::ReLU},
  {"layer4.0.conv2", ModuleKind::Conv2d}, {"layer4.0.bn2", ModuleKind::BatchNorm2d},
  {"layer4.0.downsample", ModuleKind::Sequential}, {"layer4.0.downsample.0", ModuleKind::Conv2d},
  {"layer4.0.downsample.1", ModuleKind::BatchNorm2d}, {"layer4.1", ModuleKind::BasicBlock},
  {"layer4.1.conv1", ModuleKind::Conv2d}, {"layer4.1.bn1", ModuleKind::BatchNorm2d},
  {"layer4.1.relu", ModuleKind::ReLU}, {"layer4.1.conv2", ModuleKind::Conv2d},
  {"layer4.1.bn2", ModuleKind::BatchNorm2d}, {"avgpool", ModuleKind::AdaptiveAvgPool2d},
  {"fc", ModuleKind::Linear},
};
// clang-format on

// [(key, list(t.shape)) for key, t in
// torchvision.models.resnet18(num_classes=5).state_dict().items()]
// clang-format off
const std::vector<std::pair<std::string, Shape>> kTorchvisionStateDict = {
  {"conv1.weight", {64, 3, 7, 7}}, {"bn1.weight", {64}}, {"bn1.bias", {64}},
  {"bn1.running_mean", {64}}, {"bn1.running_var", {64}}, {"bn1.num_batches_tracked", {}},
  {"layer1.0.conv1.weight", {64, 64, 3, 3}}, {"layer1.0.bn1.weight", {64}},
  {"layer1.0.bn1.bias", {64}}, {"layer1.0.bn1.running_mean", {64}},
  {"layer1.0.bn1.running_var", {64}}, {"layer1.0.bn1.num_batches_tracked", {}},
  {"layer1.0.conv2.weight", {64, 64, 3, 3}}, {"layer1.0.bn2.weight", {64}},
  {"layer1.0.bn2.bias", {64}}, {"layer1.0.bn2.running_mean", {64}},
  {"layer1.0.bn2.running_var", {64}}, {"layer1.0.bn2.num_batches_tracked", {}},
  {"layer1.1.conv1.weight", {64, 64, 3, 3}}, {"layer1.1.bn1.weight", {64}},
  {"layer1.1.bn1.bias", {64}}, {"layer1.1.bn1.running_mean", {64}},
  {"layer1.1.bn1.running_var", {64}}, {"layer1.1.bn1.num_batches_tracked", {}},
  {"layer1.1.conv2.weight", {64, 64, 3, 3}}, {"layer1.1.bn2.weight", {64}},
  {"layer1.1.bn2.bias", {64}}, {"layer1.1.bn2.running_mean", {64}},
  {"layer1.1.bn2.running_var", {64}}, {"layer1.1.bn2.num_batches_tracked", {}},
  {"layer2.0.conv1.weight", {128, 64, 3, 3}}, {"layer2.0.bn1.weight", {128}},
  {"layer2.0.bn1.bias", {128}}, {"layer2.0.bn1.running_mean", {128}},
  {"layer2.0.bn1.running_var", {128}}, {"layer2.0.bn1.num_batches_tracked", {}},
  {"layer2.0.conv2.weight", {128, 128, 3, 3}}, {"layer2.0.bn2.weight", {128}},
  {"layer2.0.bn2.bias", {128}}, {"layer2.0.bn2.running_mean", {128}},
  {"layer2.0.bn2.running_var", {128}}, {"layer2.0.bn2.num_batches_tracked", {}},
  {"layer2.0.downsample.0.weight", {128, 64, 1, 1}}, {"layer2.0.downsample.1.weight", {128}},
  {"layer2.0.downsample.1.bias", {128}}, {"layer2.0.downsample.1.running_mean", {128}},
  {"layer2.0.downsample.1.running_var", {128}}, {"layer2.0.downsample.1.num_batches_tracked", {}},
  {"layer2.1.conv1.weight", {128, 128, 3, 3}}, {"layer2.1.bn1.weight", {128}},
  {"layer2.1.bn1.bias", {128}}, {"layer2.1.bn1.running_mean", {128}},
  {"layer2.1.bn1.running_var", {128}}, {"layer2.1.bn1.num_batches_tracked", {}},
  {"layer2.1.conv2.weight", {128, 128, 3, 3}}, {"layer2.1.bn2.weight", {128}},
  {"layer2.1.bn2.bias", {128}}, {"layer2.1.bn2.running_mean", {128}},
  {"layer2.1.bn2.running_var", {128}}, {"layer2.1.bn2.num_batches_tracked", {}},
  {"layer3.0.conv1.weight", {256, 128, 3, 3}}, {"layer3.0.bn1.weight", {256}},
  {"layer3.0.bn1.bias", {256}}, {"layer3.0.bn1.running_mean", {256}},
  {"layer3.0.bn1.running_var", {256}}, {"layer3.0.bn1.num_batches_tracked", {}},
  {"layer3.0.conv2.weight", {256, 256, 3, 3}}, {"layer3.0.bn2.weight", {256}},
  {"layer3.0.bn2.bias", {256}}, {"layer3.0.bn2.running_mean", {256}},
  {"layer3.0.bn2.running_var", {256}}, {"layer3.0.bn2.num_batches_tracked", {}},
  {"layer3.0.downsample.0.weight", {256, 128, 1, 1}}, {"layer3.0.downsample.1.weight", {256}},
  {"layer3.0.downsample.1.bias", {256}}, {"layer3.0.downsample.1.running_mean", {256}},
  {"layer3.0.downsample.1.running_var", {256}}, {"layer3.0.downsample.1.num_batches_tracked", {}},
  {"layer3.1.conv1.weight", {256, 256, 3, 3}}, {"layer3.1.bn1.weight", {256}},
  {"layer3.1.bn1.bias", {256}}, {"layer3.1.bn1.running_mean", {256}},
  {"layer3.1.bn1.running_var", {256}}, {"layer3.1.bn1.num_batches_tracked", {}},
  {"layer3.1.conv2.weight", {256, 256, 3, 3}}, {"layer3.1.bn2.weight", {256}},
  {"layer3.1.bn2.bias", {256}}, {"layer3.1.bn2.running_mean", {256}},
  {"layer3.1.bn2.running_var", {256}}, {"layer3.1.bn2.num_batches_tracked", {}},
  {"layer4.0.conv1.weight", {512, 256, 3, 3}}, {"layer4.0.bn1.weight", {512}},
  {"layer4.0.bn1.bias", {512}}, {"layer4.0.bn1.running_mean", {512}},
  {"layer4.0.bn1.running_var", {512}}, {"layer4.0.bn1.num_batches_tracked", {}},
  {"layer4.0.conv2.weight", {512, 512, 3, 3}}, {"layer4.0.bn2.weight", {512}},
  {"layer4.0.bn2.bias", {512}}, {"layer4.0.bn2.running_mean", {512}},
  {"layer4.0.bn2.running_var", {512}}, {"layer4.0.bn2.num_batches_tracked", {}},
  {"layer4.0.downsample.0.weight", {512, 256, 1, 1}}, {"layer4.0.downsample.1.weight", {512}},
  {"layer4.0.downsample.1.bias", {512}}, {"layer4.0.downsample.1.running_mean", {512}},
  {"layer4.0.downsample.1.running_var", {512}}, {"layer4.0.downsample.1.num_batches_tracked", {}},
  {"layer4.1.conv1.weight", {512, 512, 3, 3}}, {"layer4.1.bn1.weight", {512}},
  {"layer4.1.bn1.bias", {512}}, {"layer4.1.bn1.running_mean", {512}},
  {"layer4.1.bn1.running_var", {512}}, {"layer4.1.bn1.num_batches_tracked", {}},
  {"layer4.1.conv2.weight", {512, 512, 3, 3}}, {"layer4.1.bn2.weight", {512}},
  {"layer4.1.bn2.bias", {512}}, {"layer4.1.bn2.running_mean", {512}},
  {"layer4.1.bn2.running_var", {512}}, {"layer4.1.bn2.num_batches_tracked", {}},
  {"fc.weight", {5, 512}}, {"fc.bias", {5}},
};
// clang-format on

bool is_buffer_key(const std::string& key) {
  return key.ends_with(".running_mean") || key.ends_with(".running_var") ||
         key.ends_with(".num_batches_tracked");
}

// Mean and standard deviation (unbiased) of a host tensor, in double.
std::pair<double, double> mean_std(const Tensor& t) {
  double sum = 0, squares = 0;
  for (int64_t i = 0; i < t.numel(); ++i) sum += t.item(i);
  const double mean = sum / static_cast<double>(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) squares += (t.item(i) - mean) * (t.item(i) - mean);
  return {mean, std::sqrt(squares / static_cast<double>(t.numel() - 1))};
}

// A deep copy of the initial state with `key` (if present) replaced.
TensorMap initial_state_with(const std::string& key, Tensor replacement) {
  TensorMap state;
  for (const auto& [k, t] : TinyModelTest::initial_state())
    state.emplace_back(k, k == key ? replacement : t.clone());
  return state;
}

// ---- the module tree ---------------------------------------------------------------------------

class ModelGraph : public TinyModelTest {};

TEST_F(ModelGraph, NamedModulesMatchTorchvisionPathsKindsAndOrder) {
  const std::vector<Module>& modules = model().modules();
  ASSERT_EQ(modules.size(), 68u)
      << "torchvision's resnet18 has 68 named modules, the root included";
  ASSERT_EQ(kTorchvisionModules.size(), 68u);
  for (size_t i = 0; i < modules.size(); ++i) {
    EXPECT_EQ(modules[i].path, kTorchvisionModules[i].first) << "named_modules()[" << i << "]";
    EXPECT_EQ(kind_name(modules[i].kind), kind_name(kTorchvisionModules[i].second))
        << "kind of '" << modules[i].path << "'";
  }
}

TEST_F(ModelGraph, ChildrenAreInDefinitionOrder) {
  EXPECT_EQ(model().module("").children,
            (std::vector<std::string>{"conv1", "bn1", "relu", "maxpool", "layer1", "layer2",
                                      "layer3", "layer4", "avgpool", "fc"}));
  EXPECT_EQ(model().module("layer2").children, (std::vector<std::string>{"layer2.0", "layer2.1"}));
  EXPECT_EQ(model().module("layer2.0").children,
            (std::vector<std::string>{"layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu",
                                      "layer2.0.conv2", "layer2.0.bn2", "layer2.0.downsample"}));
  EXPECT_EQ(model().module("layer2.0.downsample").children,
            (std::vector<std::string>{"layer2.0.downsample.0", "layer2.0.downsample.1"}));
  EXPECT_TRUE(model().module("layer2.0.conv1").children.empty());
}

TEST_F(ModelGraph, LayerGeometryMatchesTorchvision) {
  struct Expected {
    const char* path;
    int64_t in, out;
    int kernel, stride, padding;
  };
  for (const Expected& e :
       {Expected{"conv1", 3, 64, 7, 2, 3}, Expected{"layer1.0.conv1", 64, 64, 3, 1, 1},
        Expected{"layer2.0.conv1", 64, 128, 3, 2, 1}, Expected{"layer2.0.conv2", 128, 128, 3, 1, 1},
        Expected{"layer2.0.downsample.0", 64, 128, 1, 2, 0},
        Expected{"layer4.0.downsample.0", 256, 512, 1, 2, 0},
        Expected{"layer4.1.conv2", 512, 512, 3, 1, 1}}) {
    const Module& m = model().module(e.path);
    EXPECT_EQ(m.in, e.in) << e.path;
    EXPECT_EQ(m.out, e.out) << e.path;
    EXPECT_EQ(m.kernel, e.kernel) << e.path;
    EXPECT_EQ(m.stride, e.stride) << e.path;
    EXPECT_EQ(m.padding, e.padding) << e.path;
  }
  const Module& pool = model().module("maxpool");
  EXPECT_EQ(pool.kernel, 3);
  EXPECT_EQ(pool.stride, 2);
  EXPECT_EQ(pool.padding, 1);
  EXPECT_EQ(model().module("fc").in, 512);
  EXPECT_EQ(model().module("fc").out, testing::kTinyClasses);
  EXPECT_EQ(model().num_classes(), testing::kTinyClasses);
}

TEST_F(ModelGraph, StateDictKeysAndShapesMatchTorchvision) {
  const std::vector<std::string>& keys = model().state_keys();
  ASSERT_EQ(keys.size(), 122u) << "torchvision's resnet18 state_dict has 122 entries";
  ASSERT_EQ(kTorchvisionStateDict.size(), 122u);
  const TensorMap state = model().state_dict();
  ASSERT_EQ(state.size(), 122u);
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i], kTorchvisionStateDict[i].first) << "state_dict key " << i;
    EXPECT_EQ(state[i].first, kTorchvisionStateDict[i].first) << "state_dict() entry " << i;
    EXPECT_EQ(state[i].second.shape(), kTorchvisionStateDict[i].second)
        << kTorchvisionStateDict[i].first;
  }
}

TEST_F(ModelGraph, ParametersAreTheNonBufferKeysInOrderWithTheirShapes) {
  std::vector<std::string> expected;
  for (const auto& [key, shape] : kTorchvisionStateDict)
    if (!is_buffer_key(key)) expected.push_back(key);
  ASSERT_EQ(expected.size(), 62u) << "resnet18 has 62 named parameters";
  EXPECT_EQ(model().parameter_names(), expected);
  for (const auto& [key, shape] : kTorchvisionStateDict) {
    EXPECT_EQ(model().tensor(key).shape(), shape) << key;
    EXPECT_EQ(model().tensor(key).device(), Device::CPU) << key;
  }
}

TEST_F(ModelGraph, FloatStateIsF32AndNumBatchesTrackedIsAnI64Scalar) {
  for (const std::string& key : model().state_keys()) {
    const Tensor& t = model().tensor(key);
    if (key.ends_with("num_batches_tracked")) {
      EXPECT_EQ(t.dtype(), DType::I64) << key;
      EXPECT_EQ(t.shape(), Shape{}) << key << " is a 0-dim tensor in PyTorch";
      EXPECT_EQ(t.item(), 0.0) << key;
    } else {
      EXPECT_EQ(t.dtype(), DType::F32) << key;
    }
  }
}

TEST_F(ModelGraph, EachStateKeyBelongsToItsModule) {
  EXPECT_EQ(model().owner_of("conv1.weight"), "conv1");
  EXPECT_EQ(model().owner_of("layer2.0.downsample.1.running_var"), "layer2.0.downsample.1");
  EXPECT_EQ(model().owner_of("fc.bias"), "fc");
  const Module& bn = model().module("layer1.0.bn1");
  EXPECT_EQ(bn.parameters, (std::vector<std::string>{"layer1.0.bn1.weight", "layer1.0.bn1.bias"}));
  EXPECT_EQ(bn.buffers,
            (std::vector<std::string>{"layer1.0.bn1.running_mean", "layer1.0.bn1.running_var",
                                      "layer1.0.bn1.num_batches_tracked"}));
  EXPECT_TRUE(model().module("layer1.0").parameters.empty()) << "a block owns no tensors directly";
}

TEST_F(ModelGraph, UnknownNamesAreBadInputNamingThem) {
  EXPECT_NE(bad_input_message([&] { model().module("layer5"); }).find("layer5"), std::string::npos);
  EXPECT_NE(bad_input_message([&] { model().tensor("fc.gamma"); }).find("fc.gamma"),
            std::string::npos);
  EXPECT_NE(bad_input_message([&] { model().owner_of("bn1.beta"); }).find("bn1.beta"),
            std::string::npos);
  EXPECT_FALSE(model().has_module("layer5"));
  EXPECT_TRUE(model().has_module(""));
}

TEST(ModelKinds, KindNamesRoundTripAndUnknownKindsAreBadInput) {
  for (const auto& [path, kind] : kTorchvisionModules)
    EXPECT_EQ(parse_kind(kind_name(kind)), kind) << path;
  EXPECT_NE(bad_input_message([] { parse_kind("Conv3d"); }).find("Conv3d"), std::string::npos);
}

TEST(ModelBuild, ZeroClassesIsBadInput) {
  EXPECT_NE(bad_input_message([] { Model::resnet18(0); }).find("num_classes"), std::string::npos);
}

// ---- initialisation ----------------------------------------------------------------------------

TEST_F(ModelGraph, ConvWeightsAreKaimingNormalWithFanOut) {
  // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0, 2 / (out * k * k)).
  // The sample std of n normals has relative spread 1/sqrt(2n); 5 of those is a loose, seed-proof
  // bound.
  int convs = 0;
  for (const Module& m : model().modules()) {
    if (m.kind != ModuleKind::Conv2d) continue;
    ++convs;
    const Tensor& w = model().tensor(m.path + ".weight");
    const double n = static_cast<double>(w.numel());
    const double expected_std = std::sqrt(2.0 / static_cast<double>(m.out * m.kernel * m.kernel));
    const auto [mean, std] = mean_std(w);
    EXPECT_NEAR(std, expected_std, 5.0 * expected_std / std::sqrt(2.0 * n))
        << m.path << ": std of " << n << " draws";
    EXPECT_NEAR(mean, 0.0, 5.0 * expected_std / std::sqrt(n))
        << m.path << ": mean of " << n << " draws";
  }
  EXPECT_EQ(convs, 20);
}

TEST_F(ModelGraph, BatchNormStartsAsIdentityWithUnitRunningVariance) {
  for (const Module& m : model().modules()) {
    if (m.kind != ModuleKind::BatchNorm2d) continue;
    for (int64_t c = 0; c < m.out; ++c) {
      ASSERT_EQ(model().tensor(m.path + ".weight").item(c), 1.0) << m.path;
      ASSERT_EQ(model().tensor(m.path + ".bias").item(c), 0.0) << m.path;
      ASSERT_EQ(model().tensor(m.path + ".running_mean").item(c), 0.0) << m.path;
      ASSERT_EQ(model().tensor(m.path + ".running_var").item(c), 1.0) << m.path;
    }
  }
}

TEST_F(ModelGraph, LinearIsUniformWithinOneOverSqrtFanIn) {
  // nn.Linear's default: weight and bias ~ U(-1/sqrt(512), 1/sqrt(512)).
  const double bound = 1.0 / std::sqrt(512.0);
  const Tensor& w = model().tensor("fc.weight");
  EXPECT_LE(testing::abs_max(w), bound);
  EXPECT_LE(testing::abs_max(model().tensor("fc.bias")), bound);
  const auto [mean, std] = mean_std(w);
  // U(-b, b) has std b/sqrt(3); 2560 draws give a relative spread of about 1%: 5% is loose.
  EXPECT_NEAR(std, bound / std::sqrt(3.0), 0.05 * bound / std::sqrt(3.0));
  EXPECT_NEAR(mean, 0.0, 0.1 * bound);
}

TEST_F(ModelGraph, SameSeedGivesBitwiseIdenticalWeights) {
  const Model again = testing::tiny_resnet18(0);  // the shared model's seed
  for (const auto& [key, initial] : initial_state())
    ASSERT_TRUE(testing::bitwise_equal(again.tensor(key), initial)) << key;
}

TEST_F(ModelGraph, AnotherSeedGivesOtherWeights) {
  const Model other = testing::tiny_resnet18(1);
  EXPECT_FALSE(
      testing::bitwise_equal(other.tensor("conv1.weight"), model().tensor("conv1.weight")));
  EXPECT_FALSE(testing::bitwise_equal(other.tensor("layer4.1.conv2.weight"),
                                      model().tensor("layer4.1.conv2.weight")));
  EXPECT_FALSE(testing::bitwise_equal(other.tensor("fc.weight"), model().tensor("fc.weight")));
}

// ---- load_state_dict ---------------------------------------------------------------------------

TEST_F(ModelGraph, LoadStateDictCopiesEveryTensorIntoTheModel) {
  TensorMap state =
      initial_state_with("fc.weight", Tensor::full({testing::kTinyClasses, 512}, 0.25));
  for (auto& [key, t] : state)
    if (key == "layer3.1.bn2.num_batches_tracked") t = Tensor::full({}, 7, DType::I64);
  const Tensor& fc_before = model().tensor("fc.weight");
  model().load_state_dict(state);
  EXPECT_EQ(model().tensor("fc.weight").item(17), 0.25);
  EXPECT_EQ(model().tensor("layer3.1.bn2.num_batches_tracked").item(), 7.0);
  EXPECT_EQ(model().tensor("fc.weight").raw_data(), fc_before.raw_data())
      << "loading copies into the existing storage, which executors share";
}

TEST_F(ModelGraph, LoadStateDictConvertsF64ToF32) {
  const Tensor bias64 = Tensor::from_vector(std::vector<double>{0.5, -1.25, 2.0, 0.125, 3.0}, {5});
  model().load_state_dict(initial_state_with("fc.bias", bias64));
  EXPECT_EQ(model().tensor("fc.bias").dtype(), DType::F32);
  EXPECT_EQ(model().tensor("fc.bias").item(1), -1.25);
}

TEST_F(ModelGraph, LoadStateDictMissingKeyIsBadInputNamingTheKey) {
  TensorMap state;
  for (const auto& [key, t] : initial_state())
    if (key != "layer2.0.downsample.1.running_var") state.emplace_back(key, t);
  const std::string message =
      bad_input_message([&] { model().load_state_dict(state, "weights.safetensors"); });
  EXPECT_NE(message.find("layer2.0.downsample.1.running_var"), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_NE(message.find("weights.safetensors"), std::string::npos)
      << "the source is named: " << message;
}

TEST_F(ModelGraph, LoadStateDictUnexpectedKeyIsBadInputNamingTheKey) {
  TensorMap state = initial_state_with("none", Tensor());
  state.emplace_back("layer5.0.conv1.weight", Tensor::zeros({8}));
  const std::string message = bad_input_message([&] { model().load_state_dict(state); });
  EXPECT_NE(message.find("layer5.0.conv1.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("unexpected"), std::string::npos) << message;
}

TEST_F(ModelGraph, LoadStateDictWrongShapeIsBadInputNamingTheKeyAndBothShapes) {
  const TensorMap state = initial_state_with("fc.weight", Tensor::zeros({1000, 512}));
  const std::string message = bad_input_message([&] { model().load_state_dict(state); });
  EXPECT_NE(message.find("fc.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[1000, 512]"), std::string::npos) << message;
  EXPECT_NE(message.find("[5, 512]"), std::string::npos) << message;
}

TEST_F(ModelGraph, FailedLoadLeavesTheModelUntouched) {
  TensorMap state = initial_state_with("fc.bias", Tensor::full({5}, 9.0));
  for (auto& [key, t] : state)
    if (key == "layer4.1.bn2.bias") t = Tensor::zeros({3});  // wrong shape, after fc.bias is read
  bad_input_message([&] { model().load_state_dict(state); });
  EXPECT_TRUE(testing::bitwise_equal(model().tensor("fc.bias"), initial_state().back().second))
      << "a bad state_dict is rejected before anything is copied";
}

// ---- BatchNorm in train and eval mode ----------------------------------------------------------

class ModelTraining : public TinyModelTest {};

TEST_F(ModelTraining, TrainStepUpdatesRunningStatisticsAsPyTorch) {
  // running_mean = 0.9 * 0 + 0.1 * batch mean; running_var = 0.9 * 1 + 0.1 * unbiased batch var,
  // computed here in double from bn1's captured input (conv1's output).
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Train});
  testing::RecordLog log;
  log.attach(*executor);
  auto capture = model().register_forward_hook("conv1", ProbeList{probes::Capture{}});
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const Tensor x =
      testing::captured(log.only(HookWhen::Forward, "conv1", "output"));  // (2, 64, 16, 16)
  const int64_t n = x.size(0), channels = x.size(1), plane = x.size(2) * x.size(3),
                count = n * plane;
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < plane; ++j) sum += x.item((i * channels + c) * plane + j);
    const double mean = sum / static_cast<double>(count);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < plane; ++j) {
        const double d = x.item((i * channels + c) * plane + j) - mean;
        squares += d * d;
      }
    const double unbiased = squares / static_cast<double>(count - 1);
    // fp32 statistics of 512 values against a double reference: 1e-5 relative is generous.
    EXPECT_NEAR(model().tensor("bn1.running_mean").item(c), 0.1 * mean,
                1e-5 * std::fabs(0.1 * mean) + 1e-7)
        << "channel " << c;
    EXPECT_NEAR(model().tensor("bn1.running_var").item(c), 0.9 + 0.1 * unbiased,
                1e-5 * (0.9 + 0.1 * unbiased))
        << "channel " << c;
  }
}

TEST_F(ModelTraining, TrainStepCountsBatchesInEveryBatchNorm) {
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Train});
  executor->step(testing::tiny_input(), testing::tiny_labels());
  executor->step(testing::tiny_input(2), testing::tiny_labels());
  int batchnorms = 0;
  for (const std::string& key : model().state_keys()) {
    if (!key.ends_with("num_batches_tracked")) continue;
    ++batchnorms;
    EXPECT_EQ(model().tensor(key).item(), 2.0) << key;
  }
  EXPECT_EQ(batchnorms, 20);
}

TEST_F(ModelTraining, TrainStepWithoutLabelsStillUpdatesRunningStatistics) {
  // As PyTorch: model.train(); model(x) updates BatchNorm's buffers even with no backward.
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Train});
  executor->step(testing::tiny_input());
  EXPECT_EQ(model().tensor("layer3.0.bn2.num_batches_tracked").item(), 1.0);
  EXPECT_NE(model().tensor("layer3.0.bn2.running_mean").item(0), 0.0);
}

TEST_F(ModelTraining, EvalStepLeavesBuffersAndParametersUntouched) {
  // Eval with labels runs backward (for attribution) but neither updates BatchNorm nor steps SGD.
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Eval, .sgd = {.lr = 0.1}});
  const StepResult result = executor->step(testing::tiny_input(), testing::tiny_labels());
  ASSERT_TRUE(result.loss.has_value());
  for (const auto& [key, initial] : initial_state())
    EXPECT_TRUE(testing::bitwise_equal(model().tensor(key), initial))
        << key << " changed in eval mode";
}

TEST_F(ModelTraining, EvalStepWithLabelsDeliversEveryParameterGradient) {
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Eval});
  std::vector<std::string> seen;
  auto hook = model().register_grad_hook(
      "*", TensorCallback([&](const HookEvent& e, TensorRef) { seen.push_back(e.param); }));
  executor->step(testing::tiny_input(), testing::tiny_labels());
  EXPECT_EQ(
      std::set<std::string>(seen.begin(), seen.end()),
      std::set<std::string>(model().parameter_names().begin(), model().parameter_names().end()));
  EXPECT_EQ(seen.size(), 62u) << "each parameter's gradient fires once";
}

TEST_F(ModelTraining, TrainStepMovesEveryParameterAndLowersTheLossOnTheSameBatch) {
  // A small step: with batch 2 at 32x32, layer4's BatchNorms see two values per channel and the
  // loss surface is sharp, so only a step well inside the first-order regime must lower the loss.
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Train, .sgd = {.lr = 0.001}});
  const Tensor x = testing::tiny_input();
  const double first = *executor->step(x, testing::tiny_labels()).loss;
  int moved = 0;
  for (const auto& [key, initial] : initial_state())
    if (!is_buffer_key(key) && !testing::bitwise_equal(model().tensor(key), initial)) ++moved;
  EXPECT_EQ(moved, 62) << "SGD updates every parameter";
  const double second = *executor->step(x, testing::tiny_labels()).loss;
  EXPECT_LT(second, first) << "one SGD step on a batch lowers that batch's loss";
}

// ---- determinism -------------------------------------------------------------------------------

class ModelDeterminism : public TinyModelTest {};

TEST_F(ModelDeterminism, FreshExecutorsFromTheSameSeedGiveBitwiseIdenticalLosses) {
  // llm.c's check: rerun training from the same initial state and require the very same numbers
  // (momentum, so that optimizer state is part of it). Same-seed weights: SameSeedGives... above.
  // Four runs: where results hung on which thread took which share of an op (see
  // parallel_for_each), two runs agreed about half the time.
  constexpr int kRuns = 4;
  std::vector<double> losses[kRuns];
  Tensor logits[kRuns];
  for (int run = 0; run < kRuns; ++run) {
    model().load_state_dict(initial_state());
    auto executor =
        testing::cpu_executor(model(), {.mode = Mode::Train, .sgd = {.lr = 0.05, .momentum = 0.9}});
    for (int step = 0; step < 3; ++step) {
      const StepResult result =
          executor->step(testing::tiny_input(100 + step), testing::tiny_labels());
      losses[run].push_back(*result.loss);
      logits[run] = result.logits;
    }
  }
  for (int run = 1; run < kRuns; ++run) {
    for (int step = 0; step < 3; ++step)
      EXPECT_EQ(losses[0][step], losses[run][step]) << "run " << run << ", step " << step << " (bitwise: no tolerance)";
    EXPECT_TRUE(testing::bitwise_equal(logits[0], logits[run])) << "logits of the last step, run " << run;
  }
  EXPECT_NE(losses[0][0], losses[0][2]) << "the steps really trained";
}

// ---- input validation --------------------------------------------------------------------------

class ExecutorInput : public TinyModelTest {};

TEST_F(ExecutorInput, WrongChannelCountIsBadInputNamingTheShape) {
  auto executor = testing::cpu_executor(model());
  const std::string message = bad_input_message([&] {
    executor->step(Tensor::zeros({2, 1, 32, 32}));
  });
  EXPECT_NE(message.find("input"), std::string::npos) << message;
  EXPECT_NE(message.find("[2, 1, 32, 32]"), std::string::npos) << message;
}

TEST_F(ExecutorInput, WrongRankIsBadInputNamingTheShape) {
  auto executor = testing::cpu_executor(model());
  const std::string message = bad_input_message([&] {
    executor->step(Tensor::zeros({3, 32, 32}));
  });
  EXPECT_NE(message.find("input"), std::string::npos) << message;
  EXPECT_NE(message.find("[3, 32, 32]"), std::string::npos) << message;
}

TEST_F(ExecutorInput, LabelOutOfRangeIsBadInputNamingTheIndexAndValue) {
  auto executor = testing::cpu_executor(model());
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 5}, {2});
  const std::string message =
      bad_input_message([&] { executor->step(testing::tiny_input(), labels); });
  EXPECT_NE(message.find("labels[1] = 5"), std::string::npos) << message;
  const Tensor negative = Tensor::from_vector(std::vector<int64_t>{-1, 0}, {2});
  EXPECT_NE(bad_input_message([&] {
              executor->step(testing::tiny_input(), negative);
            }).find("labels[0] = -1"),
            std::string::npos);
}

TEST_F(ExecutorInput, LabelCountOtherThanTheBatchIsBadInputNamingBothSizes) {
  auto executor = testing::cpu_executor(model());
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3});
  const std::string message =
      bad_input_message([&] { executor->step(testing::tiny_input(), labels); });
  EXPECT_NE(message.find("labels"), std::string::npos) << message;
  EXPECT_NE(message.find("[2]"), std::string::npos) << "the batch size is named: " << message;
  EXPECT_NE(message.find("[3]"), std::string::npos) << "the labels' shape is named: " << message;
}

TEST_F(ExecutorInput, FloatLabelsAreBadInput) {
  auto executor = testing::cpu_executor(model());
  const Tensor labels = Tensor::from_vector(std::vector<float>{0, 1}, {2});
  EXPECT_NE(
      bad_input_message([&] { executor->step(testing::tiny_input(), labels); }).find("labels"),
      std::string::npos);
}

TEST_F(ExecutorInput, RejectedStepsDoNotCount) {
  auto executor = testing::cpu_executor(model());
  bad_input_message([&] { executor->step(Tensor::zeros({2, 4, 32, 32})); });
  EXPECT_EQ(executor->steps_done(), 0);
}

}  // namespace
}  // namespace hookrt
