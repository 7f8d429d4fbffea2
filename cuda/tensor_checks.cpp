// Argument checks (see tensor_checks.h): the shared backend checks, bound to the CUDA device.
#include "tensor_checks.h"

#include <string>

#include "backend_checks.h"

namespace hookrt::cuda {
namespace {

std::string described(const Operand& o) { return std::string(o.name) + " " + shape_string(o.tensor.shape()); }

}  // namespace

void require_device(const Tensor& t, const char* op, const char* name) {
  checks::require_on(t, Device::CUDA, op, name);
}

void require_f32(const Tensor& t, const char* op, const char* name) { require_dtype(t, DType::F32, op, name); }

void require_activation(const Tensor& t, const char* op, const char* name) {
  checks::require_dtype_in_on(t, Device::CUDA, {DType::F32, DType::BF16, DType::F16}, op, name);
}

void require_same_dtype(const Tensor& t, const Tensor& like, const char* op, const char* name,
                        const char* like_name) {
  require_device(t, op, name);
  checks::require_same_dtype(t, like, op, name, like_name);
}

void require_dtype(const Tensor& t, DType dtype, const char* op, const char* name) {
  checks::require_dtype_on(t, Device::CUDA, dtype, op, name);
}

void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* name) {
  checks::require_shape(t, shape, op, name);
}

void require_rank(const Tensor& t, int rank, const char* op, const char* name) {
  checks::require_rank(t, rank, op, name);
}

void require_same_layout(const Tensor& t, const Tensor& like, const char* op, const char* name,
                         const char* like_name) {
  checks::require_same_layout(t, like, op, name, like_name);
}

MemoryFormat shared_layout(std::initializer_list<Operand> operands, const char* op) {
  const Operand* nhwc = nullptr;  // the first operand that lies only in NHWC order
  for (const Operand& o : operands)
    if (!nhwc && o.tensor.defined() && !o.tensor.is_contiguous(MemoryFormat::Contiguous)) nhwc = &o;
  if (!nhwc) {
    // Where every operand lies in both orders, the first one's label decides, so that an output
    // the op allocates (which may lie in one order only: a padded convolution of one pixel) takes
    // the layout its caller works in.
    for (const Operand& o : operands)
      if (o.tensor.defined() && (o.tensor.ndim() != 4 || !o.tensor.is_contiguous(MemoryFormat::ChannelsLast)))
        return MemoryFormat::Contiguous;
    for (const Operand& o : operands)
      if (o.tensor.defined()) return o.tensor.memory_format();
    return MemoryFormat::Contiguous;
  }
  for (const Operand& o : operands)
    if (o.tensor.defined() && o.tensor.ndim() == 4 && !o.tensor.is_contiguous(MemoryFormat::ChannelsLast))
      throw Error(checks::where(op, o.name) + " " + shape_string(o.tensor.shape()) + " is " +
                  memory_format_name(o.tensor.memory_format()) +
                  "; the op's other tensors are channels_last (as " + described(*nhwc) + " is)");
  return MemoryFormat::ChannelsLast;
}

void require_allocated(const Tensor& t, const char* op, const char* name, const char* what) {
  if (!t.defined()) throw Error(checks::where(op, name) + " must be allocated with " + what);
}

}  // namespace hookrt::cuda
