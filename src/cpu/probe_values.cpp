// Probe values as floats, widened from and rounded back to F16 and BF16.
#include "cpu/probe_values.h"

#include <cmath>
#include <sstream>

#include "hookrt/error.h"

namespace hookrt::cpu {

bool probe_dtype(DType dtype) { return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16; }

float round_to_dtype(float x, DType dtype) {
  switch (dtype) {
    case DType::F16: return half_to_float(float_to_half(x));
    case DType::BF16: return bfloat16_to_float(float_to_bfloat16(x));
    default: return x;
  }
}

void check_probe_tensor(const Tensor& tensor, const char* probe) {
  const std::string who = std::string("probe ") + probe;
  if (!tensor.defined()) throw Error(who + ": the tensor is undefined");
  if (tensor.device() != Device::CPU)
    throw Error(who + ": the CPU backend runs probes on host tensors, got a " + device_name(tensor.device()) +
                " tensor");
  if (!probe_dtype(tensor.dtype()))
    throw Error(who + ": probes run on F32, F16 and BF16 tensors, got " + dtype_name(tensor.dtype()) + " " +
                shape_string(tensor.shape()));
}

float clamp_bound(double bound, DType dtype) {
  const float value = round_to_dtype(static_cast<float>(bound), dtype);
  if (std::isinf(value) && std::isfinite(bound)) {
    std::ostringstream text;
    text << "probe clamp: the bound " << bound << " overflows " << dtype_name(dtype)
         << " (torch.clamp refuses it on a tensor of that dtype)";
    throw Error(text.str(), ErrorKind::BadInput);
  }
  return value;
}

ProbeValues::ProbeValues(const Tensor& tensor, const char* probe)
    : tensor_(tensor), dtype_(tensor.dtype()), size_(tensor.numel()), data_(nullptr) {
  check_probe_tensor(tensor, probe);
  if (dtype_ == DType::F32) {
    data_ = static_cast<float*>(tensor.raw_data());
    return;
  }
  widened_.resize(static_cast<size_t>(size_));
  const uint16_t* bits = static_cast<const uint16_t*>(tensor.raw_data());
  const bool half = dtype_ == DType::F16;
  for (int64_t i = 0; i < size_; ++i)
    widened_[static_cast<size_t>(i)] = half ? half_to_float(bits[i]) : bfloat16_to_float(bits[i]);
  data_ = widened_.data();
}

void ProbeValues::store() {
  if (dtype_ == DType::F32) return;
  uint16_t* bits = static_cast<uint16_t*>(tensor_.raw_data());
  const bool half = dtype_ == DType::F16;
  for (int64_t i = 0; i < size_; ++i) {
    const float v = widened_[static_cast<size_t>(i)];
    bits[i] = half ? float_to_half(v) : float_to_bfloat16(v);
  }
}

}  // namespace hookrt::cpu
