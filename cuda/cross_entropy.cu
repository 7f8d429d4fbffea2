// Softmax cross-entropy forward (a block per row, CUB block reductions) and backward (elementwise).
#include <cub/block/block_reduce.cuh>

#include "cross_entropy.cuh"
#include "launch.cuh"

namespace hookrt::cuda {
namespace {

constexpr int kRowBlock = 256;

struct MaxIgnoringNaN {
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
};

// Reduces `value` over the block and hands the result to every thread.
template <class Reduction>
__device__ double block_all_reduce(double value, Reduction reduction) {
  using BlockReduce = cub::BlockReduce<double, kRowBlock>;
  __shared__ typename BlockReduce::TempStorage temp;
  __shared__ double result;
  const double reduced = BlockReduce(temp).Reduce(value, reduction);
  if (threadIdx.x == 0) result = reduced;
  __syncthreads();
  const double everyone = result;
  __syncthreads();  // a later call with the same reduction reuses temp and result
  return everyone;
}

struct Sum {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// logits, probs: (N, M); labels, row_losses: (N); block b handles row b.
__global__ void cross_entropy_forward_kernel(const float* logits, const int64_t* labels, float* probs,
                                             double* row_losses, int64_t m) {
  const int64_t row_index = blockIdx.x;
  const float* row = logits + row_index * m;
  double local_max = -INFINITY;
  for (int64_t j = threadIdx.x; j < m; j += kRowBlock) local_max = fmax(local_max, static_cast<double>(row[j]));
  const double row_max = block_all_reduce(local_max, MaxIgnoringNaN{});
  double local_sum = 0;
  for (int64_t j = threadIdx.x; j < m; j += kRowBlock) local_sum += exp(row[j] - row_max);
  const double log_sum_exp = row_max + log(block_all_reduce(local_sum, Sum{}));
  for (int64_t j = threadIdx.x; j < m; j += kRowBlock)
    probs[row_index * m + j] = static_cast<float>(exp(row[j] - log_sum_exp));
  if (threadIdx.x == 0) row_losses[row_index] = log_sum_exp - row[labels[row_index]];
}

// One thread: the row losses summed in row order (N is a batch, a few hundred at most), so the
// mean has the CPU reference's bits.
__global__ void mean_in_row_order_kernel(const double* row_losses, int64_t n, double* loss) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += row_losses[i];
  *loss = total / static_cast<double>(n);
}

__global__ void cross_entropy_backward_kernel(int64_t count, const float* probs, const int64_t* labels,
                                              float* dlogits, int64_t m, double inv_n) {
  HOOKRT_GRID_STRIDE_LOOP(i, count) {
    const double onehot = (i % m) == labels[i / m] ? 1.0 : 0.0;
    dlogits[i] = static_cast<float>((probs[i] - onehot) * inv_n);
  }
}

}  // namespace

void cross_entropy_forward(const float* logits, const int64_t* labels, float* probs, double* row_losses,
                           double* loss, int64_t n, int64_t m, cudaStream_t stream) {
  if (n == 0 || m == 0) return;
  cross_entropy_forward_kernel<<<static_cast<unsigned>(n), kRowBlock, 0, stream>>>(logits, labels, probs,
                                                                                    row_losses, m);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
  mean_in_row_order_kernel<<<1, 1, 0, stream>>>(row_losses, n, loss);
  HOOKRT_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_backward(const float* probs, const int64_t* labels, float* dlogits, int64_t n, int64_t m,
                            cudaStream_t stream) {
  launch_linear(cross_entropy_backward_kernel, n * m, stream, probs, labels, dlogits, m,
                1.0 / static_cast<double>(n));
}

}  // namespace hookrt::cuda
