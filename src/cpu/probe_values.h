#pragma once
// The elements a probe works on, as floats. Hooks see tensors of the dtype the model runs in, and
// probes on F16 and BF16 tensors read them as PyTorch's kernels do: widened to float (exactly:
// every half and bfloat16 value is a float), accumulated in float and double. Changing probes
// compute in float and store their result rounded to the tensor's dtype, to nearest even, as
// PyTorch stores an op's float result in a half or bfloat16 tensor. Plain C++17: the CUDA
// launcher (cuda/fused_probes.cu) reads it too.
#include <cstdint>
#include <vector>

#include "hookrt/tensor.h"

namespace hookrt::cpu {

// Whether probes run on tensors of this dtype: F32, F16, BF16.
bool probe_dtype(DType dtype);

// Throws Error unless the tensor is a defined host tensor of a probe_dtype; `probe` names the
// caller in the message.
void check_probe_tensor(const Tensor& tensor, const char* probe);

// A clamp bound as torch.clamp applies it to a tensor of `dtype` (a probe_dtype): converted to the
// dtype, through float. A finite bound the dtype cannot hold (1e6 in F16) throws Error(BadInput)
// naming the probe, as torch.clamp refuses it; infinite bounds are kept.
float clamp_bound(double bound, DType dtype);

// x rounded to `dtype` (a probe_dtype) and widened back: the value an F16 or BF16 tensor stores
// for x. The identity on F32.
float round_to_dtype(float x, DType dtype);

class ProbeValues {
 public:
  // check_probe_tensor first.
  ProbeValues(const Tensor& tensor, const char* probe);
  ProbeValues(const ProbeValues&) = delete;
  ProbeValues& operator=(const ProbeValues&) = delete;

  const float* data() const { return data_; }
  // For changing probes: write floats already rounded (round()), then store().
  float* data() { return data_; }
  int64_t size() const { return size_; }
  DType dtype() const { return dtype_; }
  float round(float x) const { return dtype_ == DType::F32 ? x : round_to_dtype(x, dtype_); }
  // Writes the floats back into an F16 or BF16 tensor (an F32 tensor is written in place).
  void store();

 private:
  Tensor tensor_;
  DType dtype_;
  int64_t size_;
  std::vector<float> widened_;  // F16, BF16: the values as floats
  float* data_;
};

}  // namespace hookrt::cpu
