#pragma once
// Argument checks of the CUDA backend's methods. Each throws Error naming the op, the tensor and
// what was expected, in the CPU backend's words, so both backends fail alike.
#include "hookrt/tensor.h"

namespace hookrt::cuda {

// Defined and on the device.
void require_device(const Tensor& t, const char* op, const char* name);
// On the device and F32 (what the loss, the optimizer and parameters take).
void require_f32(const Tensor& t, const char* op, const char* name);
// On the device and F32 or BF16, the dtypes of activations and their gradients (backend.h).
void require_activation(const Tensor& t, const char* op, const char* name);
// On the device with the dtype of `like` (named like_name): an operand that must share the op's dtype.
void require_same_dtype(const Tensor& t, const Tensor& like, const char* op, const char* name,
                        const char* like_name);
void require_dtype(const Tensor& t, DType dtype, const char* op, const char* name);
void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* name);
void require_rank(const Tensor& t, int rank, const char* op, const char* name);
// Defined: `what` says what the caller should have passed.
void require_allocated(const Tensor& t, const char* op, const char* name, const char* what);

}  // namespace hookrt::cuda
