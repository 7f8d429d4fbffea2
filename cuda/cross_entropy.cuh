#pragma once
// Softmax cross-entropy of logits (N, M) against labels in [0, M), queued on `stream`. Labels are
// checked on the host before these run (as the CPU reference checks them before computing).
#include <cuda_runtime.h>

#include <cstdint>

namespace hookrt::cuda {

// probs (N,M) = softmax of each row; row_losses (N) = log-sum-exp(row) - row[label], in double;
// loss (1) = the sum of row_losses in row order, divided by N, as the CPU reference computes it.
// One block per row; the exponentials are summed in double as in the CPU reference.
void cross_entropy_forward(const float* logits, const int64_t* labels, float* probs, double* row_losses,
                           double* loss, int64_t n, int64_t m, cudaStream_t stream);
// dlogits (N,M) = (probs - onehot(labels)) / N, in double before rounding.
void cross_entropy_backward(const float* probs, const int64_t* labels, float* dlogits, int64_t n, int64_t m,
                            cudaStream_t stream);

}  // namespace hookrt::cuda
