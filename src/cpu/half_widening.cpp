#include "cpu/half_widening.h"

#include <cstdint>
#include <string>

namespace hookrt::cpu {
namespace {

Tensor widened(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::F32, t.memory_format());
  const auto* bits = static_cast<const uint16_t*>(t.raw_data());
  float* values = out.data<float>();
  const bool bf16 = t.dtype() == DType::BF16;
  for (int64_t i = 0; i < t.numel(); ++i) values[i] = bf16 ? bfloat16_to_float(bits[i]) : half_to_float(bits[i]);
  return out;
}

void round_into(const Tensor& values, Tensor& target) {
  const float* v = values.data<float>();
  auto* bits = static_cast<uint16_t*>(target.raw_data());
  const bool bf16 = target.dtype() == DType::BF16;
  for (int64_t i = 0; i < values.numel(); ++i) bits[i] = bf16 ? float_to_bfloat16(v[i]) : float_to_half(v[i]);
}

}  // namespace

HalfWidening::HalfWidening(const char* op, DType dtype) : op_(op), dtype_(dtype) {
  if (dtype != DType::BF16 && dtype != DType::F16)
    throw Error(std::string("internal: ") + op + " widens BF16 or F16, not " + dtype_name(dtype));
}

void HalfWidening::require_half(const Tensor& t, const char* name) const {
  if (!t.defined()) throw Error(std::string(op_) + ": " + name + " is undefined");
  if (t.device() != Device::CPU) throw Error(std::string(op_) + ": " + name + " is on " + device_name(t.device()) + ", not the host");
  if (t.dtype() != dtype_)
    throw Error(std::string(op_) + ": " + name + " has dtype " + dtype_name(t.dtype()) + "; expected " +
                dtype_name(dtype_) + " (the op runs in " + dtype_name(dtype_) + ")");
}

Tensor HalfWidening::in(const Tensor& t, const char* name) const {
  require_half(t, name);
  return widened(t);
}

Tensor& HalfWidening::out(Tensor& t, const char* name) {
  if (t.defined()) require_half(t, name);
  outputs_.push_back({&t, t.defined() ? Tensor::empty(t.shape(), DType::F32, t.memory_format()) : Tensor()});
  return outputs_.back().stand_in;
}

Tensor& HalfWidening::in_out(Tensor& t, const char* name) {
  outputs_.push_back({&t, in(t, name)});
  return outputs_.back().stand_in;
}

void HalfWidening::finish() {
  for (Output& output : outputs_) {
    if (!output.stand_in.defined()) continue;  // an output the op was not asked for
    if (!output.target->defined())
      *output.target = Tensor::empty(output.stand_in.shape(), dtype_, output.stand_in.memory_format());
    round_into(output.stand_in, *output.target);
  }
  outputs_.clear();
}

}  // namespace hookrt::cpu
