#include "support/autocast_dtypes.h"

#include <gtest/gtest.h>

namespace hookrt::testing {

void AutocastDtypeLog::attach(Model& model) {
  model.register_forward_hook("*", PairCallback([this](const HookEvent& e, TensorRef input, TensorRef output) {
                                inputs_[e.module] = input.dtype();
                                outputs_[e.module] = output.dtype();
                              }));
  model.register_full_backward_hook("*", PairCallback([this](const HookEvent& e, TensorRef grad_input, TensorRef) {
                                      if (grad_input.defined()) grad_inputs_[e.module] = grad_input.dtype();
                                    }));
  model.register_grad_hook("*", TensorCallback([this](const HookEvent& e, TensorRef grad) { grads_[e.param] = grad.dtype(); }));
}

void AutocastDtypeLog::expect_autocast_dtypes(const Model& model, DType half) const {
  ASSERT_EQ(outputs_.size(), model.modules().size());
  for (const auto& [module, dtype] : outputs_) EXPECT_EQ(dtype, half) << "output of '" << module << "'";
  EXPECT_EQ(inputs_.at(""), DType::F32);
  EXPECT_EQ(inputs_.at("conv1"), DType::F32);
  EXPECT_EQ(inputs_.at("bn1"), half);
  EXPECT_EQ(inputs_.at("fc"), half);
  EXPECT_EQ(grad_inputs_.at("conv1"), DType::F32) << "the gradient of the F32 batch";
  EXPECT_EQ(grad_inputs_.at(""), DType::F32);
  EXPECT_EQ(grad_inputs_.at("layer1.0.conv1"), half);
  EXPECT_EQ(grad_inputs_.at("fc"), half);
  ASSERT_EQ(grads_.size(), model.parameter_names().size());
  for (const auto& [key, dtype] : grads_) EXPECT_EQ(dtype, DType::F32) << "gradient of '" << key << "'";
}

}  // namespace hookrt::testing
