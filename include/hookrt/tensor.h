#pragma once
// Tensor — a dense, contiguous, row-major (NCHW for images) array on one device. Copies are
// shallow and share storage, like torch.Tensor; clone() makes a deep copy. A default-constructed
// Tensor is undefined (PyTorch's None), e.g. the grad_input of a module whose input needs no grad.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hookrt/error.h"

namespace hookrt {

enum class DType { F32, F64, F16, BF16, I64, I32, U8 };
enum class Device { CPU, CUDA };

using Shape = std::vector<int64_t>;

size_t dtype_size(DType dtype);
std::string dtype_name(DType dtype);    // "F32", "I64", ... as safetensors spells them
std::string device_name(Device device);  // "cpu", "cuda"
std::string shape_string(const Shape& shape);  // "[8, 64, 56, 56]"
int64_t shape_numel(const Shape& shape);

// C++ type ↔ DType for typed access.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

// A block of bytes on a device, freed by its deleter. Backends allocate these.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  std::function<void(void*)> deleter;
  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (deleter && data) deleter(data);
  }
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, size_t byte_offset = 0);

  // Host tensors. empty() leaves contents unspecified; zeros() clears them.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::CPU; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw_data() const;
  // Typed pointer; throws if T does not match dtype().
  template <class T> T* data() const {
    check_access(dtype_of<T>());
    return static_cast<T*>(raw_data());
  }

  // The same storage seen with another shape of the same element count.
  Tensor reshape(const Shape& shape) const;
  // A deep copy on the host (this must be a host tensor).
  Tensor clone() const;
  // Host conversion between floating dtypes (F32, F64, F16, BF16) and between integer dtypes.
  Tensor to(DType dtype) const;
  // Element i as double (host tensors, any dtype); for tests and printing.
  double item(int64_t index = 0) const;

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t byte_offset() const { return byte_offset_; }

 private:
  void check_access(DType requested) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = DType::F32;
  size_t byte_offset_ = 0;
};

// A tensor handed to a host callback: read and write it in place (writes are seen downstream).
using TensorRef = Tensor;

// IEEE half and bfloat16 conversions used by the readers and writers.
float half_to_float(uint16_t bits);
uint16_t float_to_half(float value);
float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);

}  // namespace hookrt
