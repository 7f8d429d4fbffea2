#include "hookrt/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace hookrt {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  throw Error("dtype_size: unknown dtype");
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  throw Error("dtype_name: unknown dtype");
}

std::string device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string memory_format_name(MemoryFormat format) {
  return format == MemoryFormat::ChannelsLast ? "channels_last" : "contiguous_format";
}

MemoryFormat parse_memory_format(const std::string& name) {
  if (name == "channels_last") return MemoryFormat::ChannelsLast;
  if (name == "contiguous" || name == "contiguous_format") return MemoryFormat::Contiguous;
  throw Error("unknown memory format '" + name + "'; expected contiguous or channels_last", ErrorKind::BadInput);
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, DType dtype, size_t byte_offset, MemoryFormat format)
    : storage_(std::move(storage)), shape_(std::move(shape)), dtype_(dtype), byte_offset_(byte_offset), format_(format) {
  for (int64_t d : shape_)
    if (d < 0) throw Error("Tensor: negative dimension in shape " + shape_string(shape_));
  if (format_ == MemoryFormat::ChannelsLast && shape_.size() != 4)
    throw Error("Tensor: channels_last needs a 4-D (N, C, H, W) shape, not " + shape_string(shape_));
  HOOKRT_CHECK(!storage_ || byte_offset_ + nbytes() <= storage_->bytes,
               "Tensor: shape " + shape_string(shape_) + " does not fit its storage");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, MemoryFormat format) {
  auto storage = std::make_shared<Storage>();
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  // 64-byte alignment keeps vector loads aligned; never allocate zero bytes.
  const size_t rounded = ((bytes + 63) / 64) * 64 + 64;
  storage->data = std::aligned_alloc(64, rounded);
  if (!storage->data) throw Error("Tensor::empty: out of host memory allocating " + std::to_string(bytes) + " bytes");
  storage->bytes = bytes;
  storage->device = Device::CPU;
  storage->deleter = [](void* p) { std::free(p); };
  return Tensor(std::move(storage), shape, dtype, 0, format);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, MemoryFormat format) {
  Tensor t = empty(shape, dtype, format);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  const int64_t n = t.numel();
  switch (dtype) {
    case DType::F32: { float* p = t.data<float>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(value); break; }
    case DType::F64: { double* p = t.data<double>(); for (int64_t i = 0; i < n; ++i) p[i] = value; break; }
    case DType::I64: { int64_t* p = t.data<int64_t>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(value); break; }
    case DType::I32: { int32_t* p = t.data<int32_t>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(value); break; }
    default: return Tensor::full(shape, value, DType::F32).to(dtype);
  }
  return t;
}

template <class T>
static Tensor tensor_from(const std::vector<T>& values, const Shape& shape) {
  if (shape_numel(shape) != static_cast<int64_t>(values.size()))
    throw Error("Tensor::from_vector: " + std::to_string(values.size()) + " values do not fill shape " +
                shape_string(shape));
  Tensor t = Tensor::empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s) { return tensor_from(v, s); }
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s) { return tensor_from(v, s); }
Tensor Tensor::from_vector(const std::vector<int64_t>& v, const Shape& s) { return tensor_from(v, s); }

int64_t Tensor::size(int dim) const {
  const int n = ndim();
  const int d = dim < 0 ? dim + n : dim;
  if (d < 0 || d >= n) throw Error("Tensor::size: dim " + std::to_string(dim) + " out of range for shape " + shape_string(shape_));
  return shape_[static_cast<size_t>(d)];
}

void* Tensor::raw_data() const {
  if (!storage_) throw Error("Tensor: access to an undefined tensor");
  return static_cast<char*>(storage_->data) + byte_offset_;
}

void Tensor::check_access(DType requested) const {
  if (!storage_) throw Error("Tensor: access to an undefined tensor");
  if (requested != dtype_)
    throw Error("Tensor: " + dtype_name(dtype_) + " tensor read as " + dtype_name(requested));
}

bool Tensor::is_contiguous(MemoryFormat format) const {
  if (format == format_ || shape_.size() != 4) return format == format_ || format == MemoryFormat::Contiguous;
  return shape_[1] == 1 || shape_[2] * shape_[3] == 1;  // one channel, or one pixel: both orders agree
}

bool Tensor::same_layout(const Tensor& other) const { return other.is_contiguous(format_) || is_contiguous(other.format_); }

Tensor Tensor::reshape(const Shape& shape) const {
  if (shape_numel(shape) != numel())
    throw Error("Tensor::reshape: cannot view " + shape_string(shape_) + " as " + shape_string(shape));
  if (!is_contiguous(MemoryFormat::Contiguous))
    throw Error("Tensor::reshape: a channels_last " + shape_string(shape_) + " tensor cannot be viewed as " +
                shape_string(shape) + "; make it contiguous first");
  return Tensor(storage_, shape, dtype_, byte_offset_);
}

Tensor Tensor::to_memory_format(MemoryFormat format) const {
  if (!defined()) return Tensor();
  if (is_contiguous(format)) return Tensor(storage_, shape_, dtype_, byte_offset_, format);
  if (device() != Device::CPU) throw Error("Tensor::to_memory_format: only host tensors; use the backend's convert");
  Tensor out = empty(shape_, dtype_, format);
  const size_t size = dtype_size(dtype_);
  const auto* src = static_cast<const char*>(raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  const Shape& s = shape_;
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w)
          std::memcpy(dst + element_offset(s, format, n, c, h, w) * size,
                      src + element_offset(s, format_, n, c, h, w) * size, size);
  return out;
}

Tensor Tensor::clone() const {
  if (!defined()) return Tensor();
  if (device() != Device::CPU) throw Error("Tensor::clone: only host tensors; use the backend to copy device tensors");
  Tensor copy = empty(shape_, dtype_, format_);
  if (nbytes()) std::memcpy(copy.raw_data(), raw_data(), nbytes());
  return copy;
}

static bool is_floating(DType d) { return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16; }

double Tensor::item(int64_t index) const {
  if (device() != Device::CPU) throw Error("Tensor::item: only host tensors");
  if (index < 0 || index >= numel()) throw Error("Tensor::item: index " + std::to_string(index) + " out of range for shape " + shape_string(shape_));
  const char* base = static_cast<const char*>(raw_data());
  switch (dtype_) {
    case DType::F32: return reinterpret_cast<const float*>(base)[index];
    case DType::F64: return reinterpret_cast<const double*>(base)[index];
    case DType::F16: return half_to_float(reinterpret_cast<const uint16_t*>(base)[index]);
    case DType::BF16: return bfloat16_to_float(reinterpret_cast<const uint16_t*>(base)[index]);
    case DType::I64: return static_cast<double>(reinterpret_cast<const int64_t*>(base)[index]);
    case DType::I32: return reinterpret_cast<const int32_t*>(base)[index];
    case DType::U8: return reinterpret_cast<const uint8_t*>(base)[index];
  }
  return 0.0;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return clone();
  if (device() != Device::CPU) throw Error("Tensor::to: only host tensors");
  if (is_floating(dtype) != is_floating(dtype_))
    throw Error("Tensor::to: cannot convert " + dtype_name(dtype_) + " to " + dtype_name(dtype));
  Tensor out = empty(shape_, dtype, format_);
  const int64_t n = numel();
  char* dst = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < n; ++i) {
    const double v = item(i);
    switch (dtype) {
      case DType::F32: reinterpret_cast<float*>(dst)[i] = static_cast<float>(v); break;
      case DType::F64: reinterpret_cast<double*>(dst)[i] = v; break;
      case DType::F16: reinterpret_cast<uint16_t*>(dst)[i] = float_to_half(static_cast<float>(v)); break;
      case DType::BF16: reinterpret_cast<uint16_t*>(dst)[i] = float_to_bfloat16(static_cast<float>(v)); break;
      case DType::I64: reinterpret_cast<int64_t*>(dst)[i] = static_cast<int64_t>(v); break;
      case DType::I32: reinterpret_cast<int32_t*>(dst)[i] = static_cast<int32_t>(v); break;
      case DType::U8: reinterpret_cast<uint8_t*>(dst)[i] = static_cast<uint8_t>(v); break;
    }
  }
  return out;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400u) == 0) { mantissa <<= 1; --exponent; }
      mantissa &= 0x3FFu;
      bits = sign | (exponent << 23) | (mantissa << 13);
    }
  } else if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) return sign | (abs > 0x7F800000u ? 0x7E00u : 0x7C00u);  // NaN / Inf
  if (abs >= 0x477FF000u) return sign | 0x7C00u;  // rounds to infinity
  if (abs < 0x38800000u) {  // subnormal or zero in half
    if (abs < 0x33000000u) return sign;
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // half subnormal = mantissa * 2^(exponent-126)
    uint32_t half_mant = mantissa >> shift;
    const uint32_t rem = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    return sign | static_cast<uint16_t>(half_mant);
  }
  uint32_t rounded = abs - 0x38000000u;  // rebias exponent 127 -> 15
  const uint32_t rem = rounded & 0x1FFFu;
  rounded >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (rounded & 1u))) ++rounded;
  return sign | static_cast<uint16_t>(rounded);
}

float bfloat16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace hookrt
