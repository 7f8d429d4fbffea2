#pragma once
// The dtypes PyTorch's hooks see under torch.autocast(dtype=torch.bfloat16 or float16) on
// torchvision's resnet18, checked the same way on either backend: every module's output is half (convolutions
// and fc compute in half, and everything after them keeps it); the root's and conv1's input is the
// F32 batch (the cast happens inside F.conv2d), so conv1's grad_input is F32; parameter gradients
// are F32.
#include <map>
#include <string>

#include "hookrt/model.h"
#include "hookrt/tensor.h"

namespace hookrt::testing {

class AutocastDtypeLog {
 public:
  // Hooks on every module and parameter of `model` that note the dtype of what they see. The log
  // must outlive the step; the hooks go with the test (TinyModelTest removes them).
  void attach(Model& model);
  // Expects what autocast gives, after one train step with input_grad: `half` is BF16 or F16, the
  // autocast dtype.
  void expect_autocast_dtypes(const Model& model, DType half = DType::BF16) const;

 private:
  std::map<std::string, DType> inputs_, outputs_, grad_inputs_, grads_;
};

}  // namespace hookrt::testing
