#pragma once
// Argument checks shared by the backends. Each throws Error naming the op, the tensor and what was
// expected, so the CPU and CUDA backends reject the same mistakes in the same words.
#include <string>

#include "hookrt/backend.h"
#include "hookrt/tensor.h"

namespace hookrt::checks {

std::string where(const char* op, const char* name);  // "op: name"

// Defined and on `device`.
void require_on(const Tensor& t, Device device, const char* op, const char* name);
// On `device` with exactly `dtype`.
void require_dtype_on(const Tensor& t, Device device, DType dtype, const char* op, const char* name);
void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* name);
void require_rank(const Tensor& t, int rank, const char* op, const char* name);
// Convolution geometry: stride/padding in range, channels agree, filter fits the padded input.
void require_conv_geometry(const Shape& x, const Shape& w, const Conv2dGeometry& g, const char* op);

}  // namespace hookrt::checks
