// Hooks from YAML configuration files: layer selection by regular expression, names, kinds and
// selectors; events, probes and cadence; and errors that name the file and the section.
#include <gtest/gtest.h>

#include "hookrt/error.h"
#include "hookrt/hook_config.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

class HookConfig : public TinyModelTest {};

const char* kConfig = R"(
conv_activations:
  enabled: true
  layers:
    layer_name_regex_pattern: 'layer1\.\d\.conv\d'
    layer_names: [fc]
  hookrt:
    Probes:
      when: [forward, grad]
      probes: [stats, 'hist=8:-1:1']
      freq: 5
      start_step: 10
      end_step: 100
disabled_section:
  enabled: false
  layers: {layer_names: [conv1]}
  hookrt: {Probes: {when: forward, probes: [stats]}}
norms:
  layers:
    layer_types: [BatchNorm2d]
    selector: 'layer4.*.relu'
  hookrt:
    Zeros: {when: forward, probes: zeros}
    Off: {enabled: false, when: backward, probes: [stats]}
)";

TEST_F(HookConfig, SectionsSelectLayersAndBecomeHooksWithTheirCadence) {
  const auto hooks = parse_hook_config(kConfig, "hooks.yaml", model());
  ASSERT_EQ(hooks.size(), 3u);
  EXPECT_EQ(hooks[0].name, "conv_activations.hookrt.Probes/forward");
  EXPECT_EQ(hooks[0].when, HookWhen::Forward);
  EXPECT_EQ(hooks[0].targets, (std::vector<std::string>{"layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1",
                                                       "layer1.1.conv2", "fc"}));
  ASSERT_EQ(hooks[0].probes.size(), 2u);
  EXPECT_EQ(probe_name(hooks[0].probes[1]), "hist");
  EXPECT_EQ(hooks[0].options.every, 5);
  EXPECT_EQ(hooks[0].options.start, 10);
  EXPECT_EQ(hooks[0].options.end, 100);
  // grad: the selected modules' parameters.
  EXPECT_EQ(hooks[1].when, HookWhen::Grad);
  EXPECT_EQ(hooks[1].targets, (std::vector<std::string>{"layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer1.1.conv1.weight",
                                                       "layer1.1.conv2.weight", "fc.weight", "fc.bias"}));
  // Kinds and selectors together, in definition order; disabled sections and features are skipped.
  EXPECT_EQ(hooks[2].name, "norms.hookrt.Zeros/forward");
  EXPECT_EQ(hooks[2].targets.size(), 20u + 2u);  // 20 BatchNorm2d + layer4.0.relu, layer4.1.relu
  EXPECT_EQ(hooks[2].targets.front(), "bn1");
}

TEST_F(HookConfig, RegisteredHooksFireOnTheirTargetsOnly) {
  auto handles = register_configured_hooks(model(), parse_hook_config(R"(
s:
  layers: {layer_name_regex_pattern: 'layer2\.0\.bn\d'}
  hookrt: {F: {when: forward, probes: [stats]}}
)", "h.yaml", model()));
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input());
  ASSERT_EQ(log.records().size(), 2u);
  EXPECT_EQ(log.records()[0].module, "layer2.0.bn1");
  EXPECT_EQ(log.records()[1].module, "layer2.0.bn2");
}

void expect_bad(const std::string& yaml, const std::string& part) {
  try {
    parse_hook_config(yaml, "cfg.yaml", TinyModelTest::model());
    ADD_FAILURE() << "accepted:\n" << yaml;
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::BadInput);
    const std::string message = error.what();
    EXPECT_EQ(message.rfind("cfg.yaml", 0), 0u) << message;
    EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

TEST_F(HookConfig, MistakesAreBadInputNamingFileSectionAndField) {
  expect_bad("a: [", "not valid YAML");
  expect_bad("- 1\n- 2\n", "mapping of sections");
  expect_bad("s: {layers: {layer_names: [conv1]}, hookrt: {F: {when: forward, probes: [stats]}}, colour: red}", "colour");
  expect_bad("s: {layers: {layer_names: [nope]}, hookrt: {F: {when: forward, probes: [stats]}}}", "nope");
  expect_bad("s: {layers: {layer_name_regex_pattern: '(('}, hookrt: {F: {when: forward, probes: [stats]}}}", "regular expression");
  expect_bad("s: {layers: {layer_name_regex_pattern: 'zzz'}, hookrt: {F: {when: forward, probes: [stats]}}}", "select no module");
  expect_bad("s: {layers: {layer_names: [fc]}, hookrt: {F: {when: sideways, probes: [stats]}}}", "sideways");
  expect_bad("s: {layers: {layer_names: [fc]}, hookrt: {F: {when: forward, probes: [sparkle]}}}", "sparkle");
  expect_bad("s: {layers: {layer_names: [fc]}, hookrt: {F: {when: forward, probes: [stats], freq: 0}}}", "freq");
  expect_bad("s: {layers: {layer_names: [fc]}, hookrt: {F: {when: forward, probes: [stats], freq: many}}}", "freq");
  expect_bad("s: {layers: {layer_names: [fc]}, hookrt: {F: {probes: [stats]}}}", "missing 'when'");
  expect_bad("s: {layers: {layer_types: [Conv3d]}, hookrt: {F: {when: forward, probes: [stats]}}}", "Conv3d");
  expect_bad("s: {layers: {layer_names: [relu]}, hookrt: {F: {when: grad, probes: [stats]}}}", "no parameter");
}

}  // namespace
}  // namespace hookrt
