// Filling device arrays with one value (see fill.cuh).
#include "fill.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

template <class T>
__global__ void fill_kernel(int64_t n, T* data, T value) {
  HOOKRT_GRID_STRIDE_LOOP(i, n) data[i] = value;
}

template <class T>
void fill_as(void* data, int64_t n, double value, cudaStream_t stream) {
  launch_linear(fill_kernel<T>, n, stream, static_cast<T*>(data), static_cast<T>(value));
}

// A 16-bit float dtype filled with the bits the host's conversion gives the value.
void fill_bits(void* data, int64_t n, uint16_t bits, cudaStream_t stream) {
  launch_linear(fill_kernel<uint16_t>, n, stream, static_cast<uint16_t*>(data), bits);
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
