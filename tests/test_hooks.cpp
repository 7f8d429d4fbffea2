// Hooks on the CPU backend: where and when hooks fire (every module boundary, repeated
// calls, backward pairing), registration order and handles, always_call, cadence, grad_input at the
// model's input, and host callbacks' read/write access — PyTorch's semantics, checked through the
// executor. Probes' numeric effects are in test_hook_probes.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "hookrt/executor.h"
#include "hookrt/model.h"
#include "support/tiny_model.h"

namespace hookrt {
namespace {

using testing::TinyModelTest;

// "forward layer1.0.relu#1": the event as DESIGN.md names a firing.
std::string label(const HookEvent& e) {
  return when_name(e.when) + " " + e.module + (e.call > 0 ? "#" + std::to_string(e.call) : "");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every (module, call) of one forward: each module once, each block's relu a second time.
std::multiset<std::string> expected_calls(const Model& model, HookWhen when) {
  std::multiset<std::string> calls;
  for (const Module& m : model.modules()) {
    calls.insert(when_name(when) + " " + m.path);
    if (m.kind == ModuleKind::ReLU && m.path != "relu")
      calls.insert(when_name(when) + " " + m.path + "#1");
  }
  return calls;
}

// ---- where and when hooks fire -----------------------------------------------------------------

class HookFiring : public TinyModelTest {
 protected:
  // Registers a callback logging label(e) on every module for each of `whens`.
  void log_every_module(std::initializer_list<HookWhen> whens) {
    for (HookWhen when : whens) {
      if (when == HookWhen::Forward || when == HookWhen::Backward) {
        model().register_hook(when, "*",
                              PairCallback([this](const HookEvent& e, TensorRef, TensorRef) {
                                fired.push_back(label(e));
                              }));
      } else {
        model().register_hook(when, "*", TensorCallback([this](const HookEvent& e, TensorRef) {
                                fired.push_back(label(e));
                              }));
      }
    }
  }
  std::multiset<std::string> fired_of(HookWhen when) const {
    std::multiset<std::string> out;
    for (const std::string& f : fired)
      if (f.starts_with(when_name(when) + " ")) out.insert(f);
    return out;
  }
  size_t position(const std::string& event) const {
    auto it = std::find(fired.begin(), fired.end(), event);
    EXPECT_NE(it, fired.end()) << event << " never fired";
    return static_cast<size_t>(it - fired.begin());
  }
  std::vector<std::string> fired;
};

TEST_F(HookFiring, ForwardPreAndForwardFireAtEveryModuleContainersAndRootIncluded) {
  log_every_module({HookWhen::ForwardPre, HookWhen::Forward});
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input());
  EXPECT_EQ(fired_of(HookWhen::ForwardPre), expected_calls(model(), HookWhen::ForwardPre));
  EXPECT_EQ(fired_of(HookWhen::Forward), expected_calls(model(), HookWhen::Forward));
  EXPECT_EQ(fired.size(), 2u * 76u)
      << "68 modules plus the second call of 8 block ReLUs, per event";
  EXPECT_EQ(fired.front(), "forward_pre ") << "the root's forward_pre fires first";
  EXPECT_EQ(fired.back(), "forward ") << "the root's forward fires last";
}

TEST_F(HookFiring, BackwardPreAndBackwardFireAtEveryModuleContainersAndRootIncluded) {
  log_every_module({HookWhen::BackwardPre, HookWhen::Backward});
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input(), testing::tiny_labels());
  EXPECT_EQ(fired_of(HookWhen::BackwardPre), expected_calls(model(), HookWhen::BackwardPre));
  EXPECT_EQ(fired_of(HookWhen::Backward), expected_calls(model(), HookWhen::Backward));
  // PyTorch 1.13 (checked with hooks on "", fc, layer2, layer1, conv1): where no input needs grad,
  // the backward hook fires as soon as grad_output arrives, so the root's fires first, conv1's
  // last.
  ASSERT_GE(fired.size(), 2u);
  EXPECT_EQ(fired[0], "backward_pre ") << "the root's grad_output is the first thing backward sees";
  EXPECT_EQ(fired[1], "backward ")
      << "the root's input needs no grad: its backward hook fires at once";
  EXPECT_EQ(fired.back(), "backward conv1")
      << "conv1's backward hook fires last, also with no grad_input";
}

TEST_F(HookFiring, ForwardPreFiresParentsFirstAndForwardFiresChildrenFirstInExecutionOrder) {
  log_every_module({HookWhen::ForwardPre, HookWhen::Forward});
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input());
  std::vector<std::string> block;
  for (const std::string& f : fired)
    if (contains(f, " layer2.0")) block.push_back(f);
  // torchvision's BasicBlock.forward: conv1 bn1 relu conv2 bn2, downsample(x), add, relu.
  EXPECT_EQ(block, (std::vector<std::string>{"forward_pre layer2.0",
                                             "forward_pre layer2.0.conv1",
                                             "forward layer2.0.conv1",
                                             "forward_pre layer2.0.bn1",
                                             "forward layer2.0.bn1",
                                             "forward_pre layer2.0.relu",
                                             "forward layer2.0.relu",
                                             "forward_pre layer2.0.conv2",
                                             "forward layer2.0.conv2",
                                             "forward_pre layer2.0.bn2",
                                             "forward layer2.0.bn2",
                                             "forward_pre layer2.0.downsample",
                                             "forward_pre layer2.0.downsample.0",
                                             "forward layer2.0.downsample.0",
                                             "forward_pre layer2.0.downsample.1",
                                             "forward layer2.0.downsample.1",
                                             "forward layer2.0.downsample",
                                             "forward_pre layer2.0.relu#1",
                                             "forward layer2.0.relu#1",
                                             "forward layer2.0"}));
}

TEST_F(HookFiring, BackwardPreFiresBeforeAModulesChildrenAndBackwardAfterThem) {
  log_every_module({HookWhen::BackwardPre, HookWhen::Backward});
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input(), testing::tiny_labels());
  for (const char* parent : {"layer2.0", "layer3", "layer1.1"}) {
    const size_t pre = position(std::string("backward_pre ") + parent);
    const size_t post = position(std::string("backward ") + parent);
    for (size_t i = 0; i < fired.size(); ++i) {
      const bool child = contains(fired[i], std::string(" ") + parent + ".");
      if (child) {
        EXPECT_TRUE(pre < i && i < post)
            << fired[i] << " fired outside " << parent << "'s backward";
      }
    }
  }
  for (const Module& m : model().modules())
    EXPECT_LT(position("backward_pre " + m.path), position("backward " + m.path)) << m.path;
}

TEST_F(HookFiring, BlockReluFiresTwicePerForwardWithItsCallIndex) {
  std::vector<int> block_calls, stem_calls;
  model().register_forward_hook("layer1.0.relu", TensorCallback([&](const HookEvent& e, TensorRef) {
                                  block_calls.push_back(e.call);
                                }));
  model().register_forward_hook(
      "relu", TensorCallback([&](const HookEvent& e, TensorRef) { stem_calls.push_back(e.call); }));
  model().register_forward_hook("layer1.0.relu", ProbeList{probes::Stats{}});
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input());
  EXPECT_EQ(block_calls, (std::vector<int>{0, 1}));
  EXPECT_EQ(stem_calls, std::vector<int>{0}) << "the stem's relu is called once";
  ASSERT_EQ(log.records().size(), 2u);
  EXPECT_EQ(log.records()[0].call, 0);
  EXPECT_EQ(log.records()[1].call, 1);
  EXPECT_EQ(log.records()[1].capture_key(), "step0/forward/layer1.0.relu#1/output");
}

TEST_F(HookFiring, BackwardEventsCarryTheCallIndexOfTheirForwardCall) {
  // ReLU's backward passes grad_output where that call's output is positive: pairing each
  // backward record with the forward call of the same index must satisfy it exactly.
  model().register_forward_hook("layer1.0.relu", ProbeList{probes::Capture{}});
  model().register_full_backward_hook("layer1.0.relu", ProbeList{probes::Capture{}});
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const std::vector<ProbeRecord> backward =
      log.find(HookWhen::Backward, "layer1.0.relu", "grad_input");
  ASSERT_EQ(backward.size(), 2u);
  EXPECT_EQ(backward[0].call, 1) << "the second call's backward runs first";
  EXPECT_EQ(backward[1].call, 0);
  auto satisfies_relu_backward = [&](int backward_call, int forward_call) {
    const Tensor out =
        testing::captured(log.only(HookWhen::Forward, "layer1.0.relu", "output", forward_call));
    const Tensor gi = testing::captured(
        log.only(HookWhen::Backward, "layer1.0.relu", "grad_input", backward_call));
    const Tensor go = testing::captured(
        log.only(HookWhen::Backward, "layer1.0.relu", "grad_output", backward_call));
    for (int64_t i = 0; i < out.numel(); ++i)
      if (gi.item(i) != (out.item(i) > 0 ? go.item(i) : 0.0)) return false;
    return true;
  };
  EXPECT_TRUE(satisfies_relu_backward(0, 0));
  EXPECT_TRUE(satisfies_relu_backward(1, 1));
  ASSERT_FALSE(satisfies_relu_backward(0, 1)) << "precondition: the two calls are distinguishable";
}

TEST_F(HookFiring, HooksOnOneEventRunInRegistrationOrderAndPrependRunsFirst) {
  std::vector<std::string> order;
  auto named = [&](std::string name) {
    return TensorCallback([&order, name](const HookEvent&, TensorRef) { order.push_back(name); });
  };
  model().register_forward_hook("fc", named("a"));
  model().register_forward_hook("fc", named("b"));
  model().register_forward_hook("fc", named("first"), {.prepend = true});
  model().register_forward_hook("fc", named("c"));
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input());
  EXPECT_EQ(order, (std::vector<std::string>{"first", "a", "b", "c"}));
}

TEST_F(HookFiring, EachHookSeesWhatTheHookBeforeItLeft) {
  // As in PyTorch, where a hook's returned value is what the next hook receives.
  model().register_forward_hook(
      "avgpool", TensorCallback([](const HookEvent&, TensorRef t) { t.data<float>()[0] = 42.0f; }));
  float seen = 0;
  model().register_forward_hook(
      "avgpool", TensorCallback([&](const HookEvent&, TensorRef t) { seen = t.data<float>()[0]; }));
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input());
  EXPECT_EQ(seen, 42.0f);
}

TEST_F(HookFiring, RemovedHookNoLongerFires) {
  int fired_count = 0;
  HookHandle handle = model().register_forward_hook(
      "fc", TensorCallback([&](const HookEvent&, TensorRef) { ++fired_count; }));
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input());
  handle.remove();
  executor->step(testing::tiny_input());
  EXPECT_EQ(fired_count, 1);
  EXPECT_TRUE(model().hooks().empty());
  handle.remove();  // a second remove() is harmless, as RemovableHandle's
}

TEST_F(HookFiring, ScopedHandleRemovesItsHookWhenDestroyed) {
  {
    HookHandle handle = model().register_forward_hook("fc", ProbeList{probes::Stats{}});
    handle.scoped();
    EXPECT_FALSE(model().hooks().empty());
  }
  EXPECT_TRUE(model().hooks().empty());
}

TEST_F(HookFiring, HandleDestroyedWithoutRemoveKeepsItsHook) {
  int fired_count = 0;
  {
    HookHandle handle = model().register_forward_hook(
        "fc", TensorCallback([&](const HookEvent&, TensorRef) { ++fired_count; }));
  }
  model().register_forward_hook("fc", ProbeList{probes::Stats{}});  // a discarded handle, too
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input());
  EXPECT_EQ(fired_count, 1);
  EXPECT_EQ(log.records().size(), 1u);
}

TEST_F(HookFiring, CallbackMayRemoveItsOwnHookWhileFiring) {
  // The block ReLU fires twice: a hook that removes itself on its first call misses the second,
  // while the hook registered after it still runs at both (PyTorch iterates over a snapshot).
  std::vector<int> self_removing, after;
  HookHandle handle;
  HookHandle* self = &handle;
  handle = model().register_forward_hook("layer1.0.relu",
                                         TensorCallback([&, self](const HookEvent& e, TensorRef) {
                                           self_removing.push_back(e.call);
                                           self->remove();
                                         }));
  model().register_forward_hook("layer1.0.relu", TensorCallback([&](const HookEvent& e, TensorRef) {
                                  after.push_back(e.call);
                                }));
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input());
  executor->step(testing::tiny_input());
  EXPECT_EQ(self_removing, std::vector<int>{0});
  EXPECT_EQ(after, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(model().hooks().hooks(HookWhen::Forward).size(), 1u);
}

TEST_F(HookFiring, WhenAForwardHookThrowsOnlyAlwaysCallHooksStillRunWithNoOutput) {
  // torch.nn.Module._call_impl: on an exception, the always_call forward hooks not yet called
  // run with the (missing) result, at the failing module and at every module it unwinds through.
  std::vector<std::string> ran;
  auto logger = [&](std::string name) {
    return TensorCallback([&ran, name](const HookEvent&, TensorRef out) {
      ran.push_back(name + (out.defined() ? " with output" : " without output"));
    });
  };
  model().register_forward_hook("layer1.0.conv1", logger("always before"), {.always_call = true});
  model().register_forward_hook("layer1.0.conv1", TensorCallback([](const HookEvent&, TensorRef) {
                                  throw std::runtime_error("boom from a hook");
                                }));
  model().register_forward_hook("layer1.0.conv1", logger("always after"), {.always_call = true});
  model().register_forward_hook("layer1.0.conv1", logger("plain after"));
  model().register_forward_hook("layer1", logger("layer1 always"), {.always_call = true});
  model().register_forward_hook("layer1", logger("layer1 plain"));
  auto executor = testing::cpu_executor(model());
  try {
    executor->step(testing::tiny_input());
    ADD_FAILURE() << "the hook's exception must propagate out of step()";
  } catch (const std::runtime_error& error) {
    EXPECT_TRUE(contains(error.what(), "boom from a hook")) << error.what();
  }
  EXPECT_EQ(ran,
            (std::vector<std::string>{"always before with output", "always after without output",
                                      "layer1 always without output"}));
}

TEST_F(HookFiring, CadenceFiresAtStartThenEveryNthStepUntilEnd) {
  std::vector<int64_t> steps;
  model().register_forward_hook(
      "fc", TensorCallback([&](const HookEvent& e, TensorRef) { steps.push_back(e.step); }),
      {.every = 2, .start = 1, .end = 5});
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  model().register_forward_hook("fc", ProbeList{probes::Stats{}}, {.every = 3});
  for (int i = 0; i < 7; ++i) executor->step(testing::tiny_input(), Tensor());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 3, 5}));
  std::vector<int64_t> record_steps;
  for (const ProbeRecord& r : log.records()) record_steps.push_back(r.step);
  EXPECT_EQ(record_steps, (std::vector<int64_t>{0, 3, 6}));
}

TEST(HookCadence, FiresAtMatchesStartEveryAndInclusiveEnd) {
  const HookOptions o{.every = 3, .start = 2, .end = 11};
  std::vector<int64_t> fires;
  for (int64_t step = 0; step < 20; ++step)
    if (o.fires_at(step)) fires.push_back(step);
  EXPECT_EQ(fires, (std::vector<int64_t>{2, 5, 8, 11}));
  EXPECT_TRUE(HookOptions{}.fires_at(0));
  EXPECT_TRUE(HookOptions{}.fires_at(123456));
}

TEST_F(HookFiring, StepWithoutLabelsFiresNoBackwardEvents) {
  log_every_module({HookWhen::BackwardPre, HookWhen::Backward, HookWhen::Forward});
  model().register_grad_hook(
      "*", TensorCallback([&](const HookEvent& e, TensorRef) { fired.push_back(label(e)); }));
  model().register_full_backward_hook("@Conv2d", ProbeList{probes::Stats{}});
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input());
  EXPECT_EQ(fired.size(), 76u) << "only the forward hooks fired";
  EXPECT_TRUE(fired_of(HookWhen::Backward).empty());
  EXPECT_TRUE(fired_of(HookWhen::BackwardPre).empty());
  EXPECT_TRUE(fired_of(HookWhen::Grad).empty());
  EXPECT_TRUE(log.records().empty());
}

// ---- grad_input at the model's input -----------------------------------------------------------

class HookInputGrad : public TinyModelTest {
 protected:
  struct Seen {
    bool grad_input = false, grad_output = false;
    Tensor gi;
  };
  std::map<std::string, Seen> run(bool input_grad, StepResult* result = nullptr) {
    std::map<std::string, Seen> seen;
    for (const char* selector : {"", "conv1", "bn1"})
      model().register_full_backward_hook(
          selector, PairCallback([&seen](const HookEvent& e, TensorRef gi, TensorRef go) {
            seen[e.module] = Seen{gi.defined(), go.defined(), gi.defined() ? gi.clone() : Tensor()};
          }));
    auto executor = testing::cpu_executor(model(), {.input_grad = input_grad});
    const StepResult r = executor->step(testing::tiny_input(), testing::tiny_labels());
    if (result) *result = r;
    return seen;
  }
};

TEST_F(HookInputGrad, RootAndConv1HaveNoGradInputUnlessInputGradIsAsked) {
  // As PyTorch: the input does not require grad, so grad_input is None where it is the input.
  std::map<std::string, Seen> seen = run(false);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_FALSE(seen[""].grad_input);
  EXPECT_FALSE(seen["conv1"].grad_input);
  EXPECT_TRUE(seen["bn1"].grad_input) << "bn1's input is conv1's output, which needs grad";
  for (auto& [module, s] : seen) EXPECT_TRUE(s.grad_output) << "'" << module << "' grad_output";
}

TEST_F(HookInputGrad, ProbesOnConv1ReportNoGradInputRecordWithoutInputGrad) {
  model().register_full_backward_hook("conv1", ProbeList{probes::Stats{}});
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input(), testing::tiny_labels());
  EXPECT_TRUE(log.find(HookWhen::Backward, "conv1", "grad_input").empty());
  EXPECT_EQ(log.find(HookWhen::Backward, "conv1", "grad_output").size(), 1u);
}

TEST_F(HookInputGrad, WithInputGradRootAndConv1GetTheInputGradient) {
  StepResult result;
  std::map<std::string, Seen> seen = run(true, &result);
  ASSERT_TRUE(seen[""].grad_input);
  ASSERT_TRUE(seen["conv1"].grad_input);
  ASSERT_TRUE(result.input_grad.defined());
  EXPECT_EQ(result.input_grad.shape(), (Shape{2, 3, 32, 32}));
  EXPECT_TRUE(testing::bitwise_equal(seen[""].gi, result.input_grad))
      << "the root's grad_input is the saliency";
  EXPECT_TRUE(testing::bitwise_equal(seen["conv1"].gi, result.input_grad))
      << "conv1 is the input's only consumer";
  EXPECT_GT(testing::abs_max(result.input_grad), 0.0);
}

TEST_F(HookInputGrad, ProbesOnConv1ReportGradInputWithInputGrad) {
  model().register_full_backward_hook("conv1", ProbeList{probes::Stats{}});
  auto executor = testing::cpu_executor(model(), {.input_grad = true});
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const ProbeRecord gi = log.only(HookWhen::Backward, "conv1", "grad_input");
  EXPECT_EQ(gi.shape, (Shape{2, 3, 32, 32}));
  EXPECT_EQ(log.find(HookWhen::Backward, "conv1", "grad_output").size(), 1u);
}

// ---- host callbacks read and write -------------------------------------------------------------

class HookCallbacks : public TinyModelTest {};

TEST_F(HookCallbacks, ZeroingLayer4OutputGivesLogitsOfTheBiasAlone) {
  // avgpool(0) = 0 and fc(0) = bias, exactly: what a layer4 returning zeros produces.
  auto executor = testing::cpu_executor(model());
  const Tensor unhooked = executor->step(testing::tiny_input()).logits;
  model().register_forward_hook("layer4", TensorCallback([](const HookEvent&, TensorRef out) {
                                  std::fill_n(out.data<float>(), out.numel(), 0.0f);
                                }));
  const Tensor logits = executor->step(testing::tiny_input()).logits;
  const Tensor& bias = model().tensor("fc.bias");
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t k = 0; k < testing::kTinyClasses; ++k) {
      EXPECT_EQ(logits.item(n * testing::kTinyClasses + k), bias.item(k))
          << "sample " << n << " class " << k;
      EXPECT_NE(unhooked.item(n * testing::kTinyClasses + k), bias.item(k)) << "precondition";
    }
}

TEST_F(HookCallbacks, ZeroingTheResidualBranchLeavesTheBlockAsItsIdentityPath) {
  // layer4.1 = relu(bn2(...) + x); with bn2 returning zeros it is relu(x) = x (x is a ReLU output).
  model().register_forward_hook("layer4.1.bn2", TensorCallback([](const HookEvent&, TensorRef out) {
                                  std::fill_n(out.data<float>(), out.numel(), 0.0f);
                                }));
  model().register_forward_hook("layer4.?", ProbeList{probes::Capture{}});
  auto executor = testing::cpu_executor(model());
  testing::RecordLog log;
  log.attach(*executor);
  executor->step(testing::tiny_input());
  const Tensor block_in = testing::captured(log.only(HookWhen::Forward, "layer4.0", "output"));
  const Tensor block_out = testing::captured(log.only(HookWhen::Forward, "layer4.1", "output"));
  EXPECT_TRUE(testing::bitwise_equal(block_in, block_out));
}

TEST_F(HookCallbacks, BackwardCallbackWritingGradInputChangesUpstreamGradients) {
  // Doubling layer4's grad_input doubles every gradient upstream of it (exactly: scaling by a power
  // of two commutes with every op's backward) and leaves layer4's and fc's own gradients alone.
  std::map<std::string, Tensor> grads;
  model().register_grad_hook("*", TensorCallback([&grads](const HookEvent& e, TensorRef g) {
                               grads[e.param] = g.clone();
                             }));
  auto executor = testing::cpu_executor(model());
  executor->step(testing::tiny_input(), testing::tiny_labels());
  const std::map<std::string, Tensor> plain = grads;
  model().register_full_backward_hook("layer4",
                                      PairCallback([](const HookEvent&, TensorRef gi, TensorRef) {
                                        float* p = gi.data<float>();
                                        for (int64_t i = 0; i < gi.numel(); ++i) p[i] *= 2.0f;
                                      }));
  executor->step(testing::tiny_input(), testing::tiny_labels());  // eval: the same weights
  ASSERT_EQ(grads.size(), 62u);
  for (const auto& [key, g] : grads) {
    const Tensor& before = plain.at(key);
    if (key.starts_with("layer4.") || key.starts_with("fc.")) {
      EXPECT_TRUE(testing::bitwise_equal(g, before)) << key << " is downstream of the change";
      continue;
    }
    ASSERT_GT(testing::abs_max(before), 0.0) << key;
    double worst = 0;
    for (int64_t i = 0; i < g.numel(); ++i)
      worst = std::max(worst, std::fabs(g.item(i) - 2.0 * before.item(i)));
    EXPECT_LE(worst, 1e-6 * testing::abs_max(before))
        << key << ": exact but for a possible summation-order change";
  }
}

TEST_F(HookCallbacks, GradCallbackWritesWhatSgdApplies) {
  model().register_grad_hook("fc.bias", TensorCallback([](const HookEvent& e, TensorRef g) {
                               EXPECT_EQ(e.module, "fc");
                               EXPECT_EQ(e.kind, ModuleKind::Linear);
                               std::fill_n(g.data<float>(), g.numel(), 1.0f);
                             }));
  auto executor = testing::cpu_executor(model(), {.mode = Mode::Train, .sgd = {.lr = 0.1}});
  const Tensor before = model().tensor("fc.bias").clone();
  executor->step(testing::tiny_input(), testing::tiny_labels());
  for (int64_t k = 0; k < testing::kTinyClasses; ++k)
    EXPECT_EQ(model().tensor("fc.bias").item(k), static_cast<float>(before.item(k)) - 0.1f)
        << "p -= lr * grad with the written grad of 1, in float";
}

}  // namespace
}  // namespace hookrt
