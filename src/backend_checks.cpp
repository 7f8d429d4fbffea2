#include "backend_checks.h"

namespace hookrt::checks {

std::string where(const char* op, const char* name) { return std::string(op) + ": " + name; }

void require_on(const Tensor& t, Device device, const char* op, const char* name) {
  if (!t.defined()) throw Error(where(op, name) + " is undefined");
  if (t.device() != device)
    throw Error(where(op, name) + " is on " + device_name(t.device()) + ", not " +
                (device == Device::CPU ? "the host" : "the CUDA device"));
}

void require_dtype_on(const Tensor& t, Device device, DType dtype, const char* op, const char* name) {
  require_on(t, device, op, name);
  if (t.dtype() != dtype)
    throw Error(where(op, name) + " has dtype " + dtype_name(t.dtype()) + "; expected " + dtype_name(dtype));
}

void require_dtype_in_on(const Tensor& t, Device device, std::initializer_list<DType> dtypes, const char* op,
                         const char* name) {
  require_on(t, device, op, name);
  for (DType dtype : dtypes)
    if (t.dtype() == dtype) return;
  // "F32", "F32 or BF16", "F32, BF16 or F16"
  std::string expected;
  size_t k = 0;
  for (DType dtype : dtypes) {
    expected += (k == 0 ? "" : k + 1 == dtypes.size() ? " or " : ", ") + dtype_name(dtype);
    ++k;
  }
  throw Error(where(op, name) + " has dtype " + dtype_name(t.dtype()) + "; expected " + expected);
}

void require_same_dtype(const Tensor& t, const Tensor& like, const char* op, const char* name, const char* like_name) {
  if (!t.defined()) throw Error(where(op, name) + " is undefined");
  if (t.dtype() != like.dtype())
    throw Error(where(op, name) + " has dtype " + dtype_name(t.dtype()) + "; expected " + dtype_name(like.dtype()) +
                " (the dtype of " + like_name + ")");
}

void require_same_layout(const Tensor& t, const Tensor& like, const char* op, const char* name, const char* like_name) {
  if (!t.defined()) throw Error(where(op, name) + " is undefined");
  if (!t.same_layout(like))
    throw Error(where(op, name) + " " + shape_string(t.shape()) + " is " + memory_format_name(t.memory_format()) +
                "; expected " + memory_format_name(like.memory_format()) + " (the layout of " + like_name + ")");
}

void require_shape(const Tensor& t, const Shape& shape, const char* op, const char* name) {
  if (t.shape() != shape)
    throw Error(where(op, name) + " has shape " + shape_string(t.shape()) + "; expected " + shape_string(shape));
}

void require_rank(const Tensor& t, int rank, const char* op, const char* name) {
  if (t.ndim() != rank)
    throw Error(where(op, name) + " has shape " + shape_string(t.shape()) + "; expected rank " + std::to_string(rank));
}

void require_one_f32_on(const Tensor& t, Device device, const char* op, const char* name) {
  require_dtype_on(t, device, DType::F32, op, name);
  require_shape(t, {1}, op, name);
}

void require_conv_geometry(const Shape& x, const Shape& w, const Conv2dGeometry& g, const char* op) {
  if (g.stride < 1 || g.padding < 0)
    throw Error(std::string(op) + ": stride " + std::to_string(g.stride) + " and padding " +
                std::to_string(g.padding) + " must be >= 1 and >= 0");
  if (x[1] != w[1])
    throw Error(std::string(op) + ": input " + shape_string(x) + " has " + std::to_string(x[1]) +
                " channels but the filter " + shape_string(w) + " expects " + std::to_string(w[1]));
  if (x[2] + 2 * g.padding < w[2] || x[3] + 2 * g.padding < w[3])
    throw Error(std::string(op) + ": filter " + shape_string(w) + " is larger than the padded input " + shape_string(x));
}

}  // namespace hookrt::checks
