#pragma once
// Tensor — a dense array on one device: row-major (NCHW for images), or for a 4-D tensor
// channels-last (NHWC in memory, as torch.channels_last) where its memory format says so. The
// shape is always the logical NCHW one, as in PyTorch. Copies are shallow and share storage, like
// torch.Tensor; clone() makes a deep copy. A default-constructed Tensor is undefined (PyTorch's
// None), e.g. the grad_input of a module whose input needs no grad.
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

// How a 4-D (N, C, H, W) tensor lies in memory: Contiguous is NCHW order, ChannelsLast is NHWC
// order (the layout tensor cores read fastest). Every other rank is Contiguous.
enum class MemoryFormat { Contiguous, ChannelsLast };

using Shape = std::vector<int64_t>;

size_t dtype_size(DType dtype);
std::string dtype_name(DType dtype);    // "F32", "I64", ... as safetensors spells them
std::string device_name(Device device);  // "cpu", "cuda"
std::string shape_string(const Shape& shape);  // "[8, 64, 56, 56]"
int64_t shape_numel(const Shape& shape);
// "contiguous_format", "channels_last", as torch spells them; parse also takes "contiguous" and
// throws Error(BadInput) naming anything else.
std::string memory_format_name(MemoryFormat format);
MemoryFormat parse_memory_format(const std::string& name);

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
  // ChannelsLast needs a 4-D shape.
  Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, size_t byte_offset = 0,
         MemoryFormat format = MemoryFormat::Contiguous);

  // Host tensors. empty() leaves contents unspecified; zeros() clears them.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, MemoryFormat format = MemoryFormat::Contiguous);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, MemoryFormat format = MemoryFormat::Contiguous);
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
  MemoryFormat memory_format() const { return format_; }
  // Whether the elements lie in `format`'s order, as torch's is_contiguous(memory_format): a
  // (N, C, H, W) tensor with C == 1 or H·W == 1 lies in both orders.
  bool is_contiguous(MemoryFormat format = MemoryFormat::Contiguous) const;
  // Whether the elements of this and `other` lie in one order (same shape assumed), so that an
  // elementwise op may walk both in memory order.
  bool same_layout(const Tensor& other) const;

  void* raw_data() const;
  // Typed pointer; throws if T does not match dtype().
  template <class T> T* data() const {
    check_access(dtype_of<T>());
    return static_cast<T*>(raw_data());
  }

  // The same storage seen with another shape of the same element count, Contiguous. A
  // channels-last tensor can be viewed only where it also lies in NCHW order.
  Tensor reshape(const Shape& shape) const;
  // A deep copy on the host (this must be a host tensor), in the same memory format.
  Tensor clone() const;
  // Host conversion between floating dtypes (F32, F64, F16, BF16) and between integer dtypes,
  // element by element in memory order: the memory format is kept.
  Tensor to(DType dtype) const;
  // This host tensor in `format`: itself, relabelled, where its elements already lie in that
  // order (sharing storage), else a copy with the elements moved.
  Tensor to_memory_format(MemoryFormat format) const;
  Tensor contiguous() const { return to_memory_format(MemoryFormat::Contiguous); }
  // The i-th element in memory order as double (host tensors, any dtype); for tests and printing.
  double item(int64_t index = 0) const;

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t byte_offset() const { return byte_offset_; }

 private:
  void check_access(DType requested) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = DType::F32;
  size_t byte_offset_ = 0;
  MemoryFormat format_ = MemoryFormat::Contiguous;
};

// The memory offset, in elements, of logical element (n, c, h, w) of a (N, C, H, W) tensor in
// `format`.
inline int64_t element_offset(const Shape& s, MemoryFormat format, int64_t n, int64_t c, int64_t h, int64_t w) {
  return format == MemoryFormat::ChannelsLast ? ((n * s[2] + h) * s[3] + w) * s[1] + c
                                              : ((n * s[1] + c) * s[2] + h) * s[3] + w;
}

// A tensor handed to a host callback: read and write it in place (writes are seen downstream).
using TensorRef = Tensor;

// IEEE half and bfloat16 conversions used by the readers and writers.
float half_to_float(uint16_t bits);
uint16_t float_to_half(float value);
float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);

}  // namespace hookrt
