#pragma once
// Argument checks of the CUDA backend's methods. Each throws Error naming the op, the tensor and
// what was expected, in the CPU backend's words, so both backends fail alike.
#include <initializer_list>

#include "hookrt/tensor.h"

namespace hookrt::cuda {

// Defined and on the device.
void require_device(const Tensor& t, const char* op, const char* name);
// On the device and F32 (what the loss, the optimizer and parameters take).
void require_f32(const Tensor& t, const char* op, const char* name);
// On the device and F32, BF16 or F16, the dtypes of activations and their gradients (backend.h).
void require_activation(const Tensor& t, const char* op, const char* name);
// On the device with the dtype of `like` (named like_name): an operand that must share the op's dtype.
void require_same_dtype(const Tensor& t, const Tensor& like, const char* op, const char* name,
                        const char* like_name);
void require_dtype(const Tensor& t, DType dtype, const char* op, const char* name);
void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* name);
void require_rank(const Tensor& t, int rank, const char* op, const char* name);
// Defined, with its elements in the order of `like`'s (Tensor::same_layout), for operands of one
// shape that an op walks together in memory order: "add: b [2, 3, 4, 4] is contiguous_format;
// expected channels_last (the layout of a)".
void require_same_layout(const Tensor& t, const Tensor& like, const char* op, const char* name,
                         const char* like_name);
// A tensor as the checks name it.
struct Operand {
  const Tensor& tensor;
  const char* name;
};
// The memory format the 4-D operands of one op lie in, for operands that differ in shape (a
// convolution's x, w and y; pooling's input and output): ChannelsLast where any of them lies only
// in NHWC order, and then every 4-D one must lie in it; Contiguous where any lies only in NCHW
// order; else (every one of one channel or one pixel, lying in both orders) the first defined
// operand's format, the layout its caller works in. In the words of the CPU backend's staging: "conv2d_forward:
// w [4, 3, 3, 3] is contiguous_format; the op's other tensors are channels_last (as x [1, 3, 8,
// 8] is)". Undefined operands (outputs still to allocate) are skipped.
MemoryFormat shared_layout(std::initializer_list<Operand> operands, const char* op);
// Defined: `what` says what the caller should have passed.
void require_allocated(const Tensor& t, const char* op, const char* name, const char* what);

}  // namespace hookrt::cuda
