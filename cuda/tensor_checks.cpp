// Argument checks (see tensor_checks.h): the shared backend checks, bound to the CUDA device.
#include "tensor_checks.h"

#include "backend_checks.h"

namespace hookrt::cuda {

void require_device(const Tensor& t, const char* op, const char* name) {
  checks::require_on(t, Device::CUDA, op, name);
}

void require_f32(const Tensor& t, const char* op, const char* name) { require_dtype(t, DType::F32, op, name); }

void require_activation(const Tensor& t, const char* op, const char* name) {
  checks::require_dtype_in_on(t, Device::CUDA, {DType::F32, DType::BF16}, op, name);
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

void require_allocated(const Tensor& t, const char* op, const char* name, const char* what) {
  if (!t.defined()) throw Error(checks::where(op, name) + " must be allocated with " + what);
}

}  // namespace hookrt::cuda
