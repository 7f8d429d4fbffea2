// Filling device arrays with one value (see fill.cuh), 16 bytes per store where the array's
// alignment allows (vector_access.cuh).
#include <algorithm>
#include <cstring>
#include <iterator>

#include "fill.cuh"
#include "launch.cuh"
#include "vector_access.cuh"

namespace hookrt::cuda {
namespace {

// pattern: 16 bytes holding kVectorWidth<T> copies of value, stored whole at each vector.
template <class T>
__global__ void fill_kernel(int64_t items, VectorSplit split, T* data, T value, uint4 pattern) {
  for_each_item<kVectorWidth<T>>(
      items, split, [&](int64_t i) { data[i] = value; },
      [&](int64_t i) { *reinterpret_cast<uint4*>(data + i) = pattern; });
}

template <class T>
void fill_with(void* data, int64_t n, T value, cudaStream_t stream) {
  T copies[kVectorWidth<T>];
  std::fill(std::begin(copies), std::end(copies), value);
  static_assert(sizeof(copies) == sizeof(uint4), "a vector is 16 bytes");
  uint4 pattern;
  std::memcpy(&pattern, copies, sizeof(pattern));
  auto* elements = static_cast<T*>(data);
  const VectorSplit split = split_for_vectors(n, elements);
  launch_linear(fill_kernel<T>, split.items(), stream, split, elements, value, pattern);
}

template <class T>
void fill_as(void* data, int64_t n, double value, cudaStream_t stream) {
  fill_with<T>(data, n, static_cast<T>(value), stream);
}

// A 16-bit float dtype filled with the bits the host's conversion gives the value.
void fill_bits(void* data, int64_t n, uint16_t bits, cudaStream_t stream) {
  fill_with<uint16_t>(data, n, bits, stream);
}

}  // namespace

void fill(void* data, DType dtype, int64_t n, double value, cudaStream_t stream) {
  switch (dtype) {
    case DType::F32: fill_as<float>(data, n, value, stream); break;
    case DType::F64: fill_as<double>(data, n, value, stream); break;
    case DType::BF16: fill_bits(data, n, float_to_bfloat16(static_cast<float>(value)), stream); break;
    case DType::F16: fill_bits(data, n, float_to_half(static_cast<float>(value)), stream); break;
    case DType::I64: fill_as<int64_t>(data, n, value, stream); break;
    case DType::I32: fill_as<int32_t>(data, n, value, stream); break;
    case DType::U8: fill_as<uint8_t>(data, n, value, stream); break;
    default: throw Error("fill: dtype " + dtype_name(dtype) + " is not supported on the CUDA backend");
  }
}

}  // namespace hookrt::cuda
