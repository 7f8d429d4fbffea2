#include "cpu/channels_last_staging.h"

#include <cstring>
#include <string>

namespace hookrt::cpu {

bool ChannelsLastStaging::wanted(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    if (t->defined() && !t->is_contiguous(MemoryFormat::Contiguous)) return true;
  return false;
}

// Every 4-D operand of a staged op is channels-last: the backend contract gives one op's 4-D
// tensors one layout, and a mix would mean the caller lost track of one.
void ChannelsLastStaging::require_channels_last(const Tensor& t, const char* name) const {
  if (!t.defined()) throw Error(std::string(op_) + ": " + name + " is undefined");
  if (t.device() != Device::CPU) throw Error(std::string(op_) + ": " + name + " is on " + device_name(t.device()) + ", not the host");
  if (t.ndim() == 4 && !t.is_contiguous(MemoryFormat::ChannelsLast))
    throw Error(std::string(op_) + ": " + name + " " + shape_string(t.shape()) + " is " +
                memory_format_name(t.memory_format()) + "; the op's other tensors are channels_last");
}

Tensor ChannelsLastStaging::in(const Tensor& t, const char* name) const {
  require_channels_last(t, name);
  return t.ndim() == 4 ? t.contiguous() : t;
}

Tensor& ChannelsLastStaging::out(Tensor& t, const char* name) {
  if (t.defined()) require_channels_last(t, name);
  if (t.defined() && t.ndim() != 4) return t;  // batch norm's vectors: written in place
  outputs_.push_back({&t, t.defined() ? Tensor::empty(t.shape(), t.dtype()) : Tensor()});
  return outputs_.back().stand_in;
}

// Where t also lies in NCHW order (one channel or one pixel) its copy shares its storage, and the
// op writes t itself.
Tensor& ChannelsLastStaging::in_out(Tensor& t, const char* name) {
  Tensor copy = in(t, name);
  if (t.ndim() != 4) return t;
  outputs_.push_back({&t, copy});
  return outputs_.back().stand_in;
}

void ChannelsLastStaging::finish() {
  for (Output& output : outputs_) {
    const Tensor& stand_in = output.stand_in;
    if (!stand_in.defined()) continue;  // an output the op was not asked for
    // The op allocates the outputs it was handed undefined; only 4-D ones change layout.
    const Tensor moved = stand_in.ndim() == 4 ? stand_in.to_memory_format(MemoryFormat::ChannelsLast) : stand_in;
    if (!output.target->defined()) {
      *output.target = moved;
    } else if (moved.nbytes() && moved.raw_data() != output.target->raw_data()) {
      std::memcpy(output.target->raw_data(), moved.raw_data(), moved.nbytes());
    }
  }
  outputs_.clear();
}

}  // namespace hookrt::cpu
