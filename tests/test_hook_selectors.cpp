// Hook selectors, as DESIGN.md's "Hooks" section specifies them: an exact module path, a glob
// (`*` any characters, dots included; `?` exactly one), `@Kind`, the root "", and for grad events a
// parameter's state_dict key or its owning module; selectors matching nothing, unknown kinds and
// invalid options are Error(BadInput) naming what is wrong.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hookrt/hook_spec.h"
#include "hookrt/model.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::bad_input_message;
using testing::TinyModelTest;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class HookSelectors : public TinyModelTest {
 protected:
  std::vector<std::string> modules(const std::string& selector) {
    return model().resolve(HookWhen::Forward, selector);
  }
  std::vector<std::string> params(const std::string& selector) {
    return model().resolve(HookWhen::Grad, selector);
  }
};

TEST_F(HookSelectors, ExactPathSelectsThatModuleOnly) {
  EXPECT_EQ(modules("layer1.0.conv1"), std::vector<std::string>{"layer1.0.conv1"});
  EXPECT_EQ(modules("layer1"), std::vector<std::string>{"layer1"})
      << "an exact path does not select children";
}

TEST_F(HookSelectors, EmptySelectorIsTheRoot) {
  EXPECT_EQ(modules(""), std::vector<std::string>{""});
}

TEST_F(HookSelectors, StarMatchesAnyCharactersDotsIncluded) {
  EXPECT_EQ(modules("layer1.*.conv*"),
            (std::vector<std::string>{"layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1",
                                      "layer1.1.conv2"}));
  EXPECT_EQ(modules("layer*.relu"),
            (std::vector<std::string>{"layer1.0.relu", "layer1.1.relu", "layer2.0.relu",
                                      "layer2.1.relu", "layer3.0.relu", "layer3.1.relu",
                                      "layer4.0.relu", "layer4.1.relu"}));
  EXPECT_EQ(modules("*").size(), 68u) << "`*` matches every path, the empty root included";
  EXPECT_EQ(modules("*downsample").size(), 3u);
}

TEST_F(HookSelectors, QuestionMarkMatchesExactlyOneCharacter) {
  EXPECT_EQ(modules("layer?.0"),
            (std::vector<std::string>{"layer1.0", "layer2.0", "layer3.0", "layer4.0"}));
  EXPECT_EQ(modules("layer1.?"), (std::vector<std::string>{"layer1.0", "layer1.1"}));
  EXPECT_EQ(modules("layer2.0.downsample.?"),
            (std::vector<std::string>{"layer2.0.downsample.0", "layer2.0.downsample.1"}));
  bad_input_message([&] { modules("layer1.?conv1"); });
}

TEST_F(HookSelectors, KindSelectsEveryModuleOfThatKindInDefinitionOrder) {
  const std::vector<std::string> convs = modules("@Conv2d");
  ASSERT_EQ(convs.size(), 20u);
  EXPECT_EQ(convs.front(), "conv1");
  EXPECT_EQ(convs[1], "layer1.0.conv1");
  EXPECT_EQ(convs.back(), "layer4.1.conv2");
  EXPECT_EQ(modules("@BasicBlock").size(), 8u);
  EXPECT_EQ(modules("@Sequential"),
            (std::vector<std::string>{"layer1", "layer2", "layer2.0.downsample", "layer3",
                                      "layer3.0.downsample", "layer4", "layer4.0.downsample"}));
  EXPECT_EQ(modules("@ResNet"), std::vector<std::string>{""});
  EXPECT_EQ(modules("@Linear"), std::vector<std::string>{"fc"});
}

TEST_F(HookSelectors, GradSelectorMatchesParameterKeys) {
  EXPECT_EQ(params("fc.weight"), std::vector<std::string>{"fc.weight"});
  const std::vector<std::string> biases = params("*.bias");
  EXPECT_EQ(biases.size(), 21u) << "20 BatchNorm biases and fc.bias";
  EXPECT_EQ(params("*").size(), 62u) << "every parameter, and no buffer";
  const std::string message = bad_input_message([&] { params("*.running_mean"); });
  EXPECT_TRUE(contains(message, "*.running_mean")) << "buffers have no gradient: " << message;
}

TEST_F(HookSelectors, GradSelectorMatchesTheParametersOfTheOwningModule) {
  EXPECT_EQ(params("layer1.0.bn1"),
            (std::vector<std::string>{"layer1.0.bn1.weight", "layer1.0.bn1.bias"}));
  EXPECT_EQ(params("@Linear"), (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_EQ(params("@BatchNorm2d").size(), 40u);
  EXPECT_EQ(params("layer4.0.downsample.0"),
            std::vector<std::string>{"layer4.0.downsample.0.weight"});
}

TEST_F(HookSelectors, SelectorMatchingNothingIsBadInputNamingIt) {
  const std::string message = bad_input_message(
      [&] { model().register_forward_hook("layer9.*", ProbeList{probes::Stats{}}); });
  EXPECT_TRUE(contains(message, "layer9.*")) << message;
  const std::string grad = bad_input_message(
      [&] { model().register_grad_hook("layer1.0.relu", ProbeList{probes::Stats{}}); });
  EXPECT_TRUE(contains(grad, "layer1.0.relu")) << "a ReLU owns no parameter: " << grad;
  EXPECT_TRUE(model().hooks().empty()) << "a failed registration adds nothing";
}

TEST_F(HookSelectors, UnknownKindIsBadInputNamingIt) {
  const std::string message = bad_input_message(
      [&] { model().register_forward_hook("@Conv3d", ProbeList{probes::Stats{}}); });
  EXPECT_TRUE(contains(message, "Conv3d")) << message;
}

TEST_F(HookSelectors, HookSpecErrorsNameTheSpec) {
  const HookSpec spec = parse_hook_spec("forward:layer9.*:stats");
  const std::string message = bad_input_message([&] { register_hook_spec(model(), spec); });
  EXPECT_TRUE(contains(message, "forward:layer9.*:stats")) << message;
  const HookSpec root = parse_hook_spec("forward::capture");
  register_hook_spec(model(), root);
  EXPECT_EQ(model().hooks().hooks(HookWhen::Forward).front()->targets,
            std::vector<std::string>{""});
}

TEST_F(HookSelectors, InvalidHookOptionsAreBadInput) {
  const TensorCallback noop = [](const HookEvent&, TensorRef) {};
  bad_input_message(
      [&] { model().register_full_backward_hook("fc", noop, {.always_call = true}); });
  bad_input_message([&] { model().register_forward_hook("fc", noop, {.every = 0}); });
  bad_input_message([&] { model().register_forward_hook("fc", noop, {.start = 4, .end = 3}); });
  bad_input_message([&] { model().register_forward_hook("fc", ProbeList{}); });
  const PairCallback pair = [](const HookEvent&, TensorRef, TensorRef) {};
  bad_input_message([&] { model().register_forward_pre_hook("fc", pair); });
  EXPECT_TRUE(model().hooks().empty());
}

}  // namespace
}  // namespace hookrt
