#include "cpu/bf16_widening.h"

#include <cstdint>
#include <string>

namespace hookrt::cpu {
namespace {

Tensor widened(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::F32, t.memory_format());
  const auto* bits = static_cast<const uint16_t*>(t.raw_data());
  float* values = out.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) values[i] = bfloat16_to_float(bits[i]);
  return out;
}

void round_into(const Tensor& values, Tensor& target) {
  const float* v = values.data<float>();
  auto* bits = static_cast<uint16_t*>(target.raw_data());
  for (int64_t i = 0; i < values.numel(); ++i) bits[i] = float_to_bfloat16(v[i]);
}

}  // namespace

void Bf16Widening::require_bf16(const Tensor& t, const char* name) const {
  if (!t.defined()) throw Error(std::string(op_) + ": " + name + " is undefined");
  if (t.device() != Device::CPU) throw Error(std::string(op_) + ": " + name + " is on " + device_name(t.device()) + ", not the host");
  if (t.dtype() != DType::BF16)
    throw Error(std::string(op_) + ": " + name + " has dtype " + dtype_name(t.dtype()) +
                "; expected BF16 (the op runs in BF16)");
}

Tensor Bf16Widening::in(const Tensor& t, const char* name) const {
  require_bf16(t, name);
  return widened(t);
}

Tensor& Bf16Widening::out(Tensor& t, const char* name) {
  if (t.defined()) require_bf16(t, name);
  outputs_.push_back({&t, t.defined() ? Tensor::empty(t.shape(), DType::F32, t.memory_format()) : Tensor()});
  return outputs_.back().stand_in;
}

Tensor& Bf16Widening::in_out(Tensor& t, const char* name) {
  outputs_.push_back({&t, in(t, name)});
  return outputs_.back().stand_in;
}

void Bf16Widening::finish() {
  for (Output& output : outputs_) {
    if (!output.stand_in.defined()) continue;  // an output the op was not asked for
    if (!output.target->defined())
      *output.target = Tensor::empty(output.stand_in.shape(), DType::BF16, output.stand_in.memory_format());
    round_into(output.stand_in, *output.target);
  }
  outputs_.clear();
}

}  // namespace hookrt::cpu
