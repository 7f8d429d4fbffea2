#pragma once
// Argument checks shared by the backends. Each throws Error naming the op, the tensor and what was
// expected, so the CPU and CUDA backends reject the same mistakes in the same words.
#include <initializer_list>
#include <string>

#include "hookrt/backend.h"
#include "hookrt/tensor.h"

namespace hookrt::checks {

std::string where(const char* op, const char* name);  // "op: name"

// Defined and on `device`.
void require_on(const Tensor& t, Device device, const char* op, const char* name);
// On `device` with exactly `dtype`.
void require_dtype_on(const Tensor& t, Device device, DType dtype, const char* op, const char* name);
// On `device` with one of `dtypes`: "op: x has dtype F64; expected F32, BF16 or F16".
void require_dtype_in_on(const Tensor& t, Device device, std::initializer_list<DType> dtypes, const char* op,
                         const char* name);
// Defined, with the dtype of `like` (named like_name), for the operands of an op that must share one:
// "conv2d_forward: w has dtype F32; expected BF16 (the dtype of x)".
void require_same_dtype(const Tensor& t, const Tensor& like, const char* op, const char* name, const char* like_name);
// Defined, with its elements in the order of `like`'s (Tensor::same_layout), for operands an op
// walks together in memory order: "add: b is contiguous_format; expected channels_last (the
// layout of a)".
void require_same_layout(const Tensor& t, const Tensor& like, const char* op, const char* name, const char* like_name);
void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* name);
void require_rank(const Tensor& t, int rank, const char* op, const char* name);
// On `device`, F32, one element: a loss scaler's scale or found_inf flag.
void require_one_f32_on(const Tensor& t, Device device, const char* op, const char* name);
// Convolution geometry: stride/padding in range, channels agree, filter fits the padded input.
void require_conv_geometry(const Shape& x, const Shape& w, const Conv2dGeometry& g, const char* op);

}  // namespace hookrt::checks
