// Argument checks (see tensor_checks.h).
#include "tensor_checks.h"

#include <string>

namespace hookrt::cuda {
namespace {

std::string where(const char* op, const char* name) { return std::string(op) + ": " + name; }

}  // namespace

void require_device(const Tensor& t, const char* op, const char* name) {
  if (!t.defined()) throw Error(where(op, name) + " is undefined");
  if (t.device() != Device::CUDA)
    throw Error(where(op, name) + " is on " + device_name(t.device()) + ", not the CUDA device");
}

void require_f32(const Tensor& t, const char* op, const char* name) { require_dtype(t, DType::F32, op, name); }

void require_dtype(const Tensor& t, DType dtype, const char* op, const char* name) {
  require_device(t, op, name);
  if (t.dtype() != dtype)
    throw Error(where(op, name) + " has dtype " + dtype_name(t.dtype()) + "; expected " + dtype_name(dtype));
}

void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* name) {
  if (t.shape() != shape)
    throw Error(where(op, name) + " has shape " + shape_string(t.shape()) + "; expected " + shape_string(shape));
}

void require_rank(const Tensor& t, int rank, const char* op, const char* name) {
  if (t.ndim() != rank)
    throw Error(where(op, name) + " has shape " + shape_string(t.shape()) + "; expected rank " + std::to_string(rank));
}

void require_allocated(const Tensor& t, const char* op, const char* name, const char* what) {
  if (!t.defined()) throw Error(where(op, name) + " must be allocated with " + what);
}

}  // namespace hookrt::cuda
