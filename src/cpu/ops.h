#pragma once
// The CPU reference ops: ResNet's layers, their backwards, the loss and the SGD update, on raw
// host pointers described by small shape structs. Each op is a template over the scalar type
// (instantiated for float and double) so that tests can check every backward by float64 finite
// differences and CpuBackend can run the same code in fp32. Reductions accumulate in double.
// Tensors are contiguous and row-major: images NCHW, filters KCRS, matrices row by row.
// Threads: the ops parallelise with OpenMP and call BLAS inside their parallel regions, so the
// first GEMM makes OpenBLAS single-threaded for the whole process (see ops_gemm.h for why).
#include <cstdint>

#include "hookrt/backend.h"

namespace hookrt::cpu {

// ---- convolution: x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q); no groups, dilation or bias ----------

struct ConvShape {
  int64_t n = 1, c = 1, h = 1, w = 1;  // input
  int64_t k = 1, r = 1, s = 1;         // filters: K outputs of C x R x S
  int64_t stride = 1, padding = 0;
  int64_t p() const { return (h + 2 * padding - r) / stride + 1; }  // output height
  int64_t q() const { return (w + 2 * padding - s) / stride + 1; }  // output width
};

// How a convolution splits its batch into chunks of samples that share one im2col + GEMM (small
// feature maps are batched so that the GEMM stays wide). With several threads and at least one
// chunk per thread, whole chunks go to the threads; otherwise chunks run in turn, each one's
// im2col and GEMM split across the threads. Exposed so tests can cover every layout.
struct ConvPlan {
  int64_t samples_per_gemm = 1;
  int64_t chunks = 1;
  bool chunks_across_threads = false;
};
ConvPlan plan_conv(const ConvShape& shape, int threads);
// The OpenMP threads the ops use (1 without OpenMP). set_ops_threads sets it for the parallel
// regions the calling thread starts from now on (omp_set_num_threads); tests and benchmarks use it.
int ops_threads();
void set_ops_threads(int threads);

template <class T> void conv2d_forward(const T* x, const T* w, T* y, const ConvShape& shape);
template <class T> void conv2d_backward_data(const T* dy, const T* w, T* dx, const ConvShape& shape);
template <class T> void conv2d_backward_filter(const T* x, const T* dy, T* dw, const ConvShape& shape);

// ---- batch normalisation over x (N,C,HW) per channel -------------------------------------------

struct BatchNormShape {
  int64_t n = 1, c = 1, hw = 1;  // hw: elements per (sample, channel) plane
  int64_t count() const { return n * hw; }  // values per channel
};

// Training: normalises with the batch mean and biased variance, keeps them as save_mean and
// save_invstd = 1/sqrt(var + eps), and updates running_mean/running_var with the unbiased
// variance as PyTorch does. Throws Error(BadInput) when a channel has a single value.
template <class T>
void batchnorm_forward_training(const T* x, const T* weight, const T* bias, T* running_mean,
                                T* running_var, T* y, T* save_mean, T* save_invstd,
                                const BatchNormShape& shape, double eps, double momentum);
// Inference: normalises with the running statistics and reports them as save_mean/save_invstd.
template <class T>
void batchnorm_forward_inference(const T* x, const T* weight, const T* bias, const T* running_mean,
                                 const T* running_var, T* y, T* save_mean, T* save_invstd,
                                 const BatchNormShape& shape, double eps);
// Backward given save_mean/save_invstd from the forward. Training differentiates through the
// batch statistics; inference treats them as constants. dx, dweight, dbias may be null.
template <class T>
void batchnorm_backward(const T* dy, const T* x, const T* weight, const T* save_mean,
                        const T* save_invstd, T* dx, T* dweight, T* dbias,
                        const BatchNormShape& shape, BatchNormMode mode);

// The two parts of each (Backend::splits_batchnorm). Forward: the statistics (and in training
// the running update) and coefficients (2, C), scale then shift; the running statistics are only
// read in inference. Backward: dweight and dbias (either may be null) and coefficients (4, C):
// gain, centre, grad_mean, projection (null: not wanted). batchnorm_dx: x null in inference.
template <class T>
void batchnorm_forward_coefficients(const T* x, const T* weight, const T* bias, T* running_mean,
                                    T* running_var, T* save_mean, T* save_invstd, T* coefficients,
                                    const BatchNormShape& shape, BatchNormMode mode, double eps, double momentum);
template <class T>
void batchnorm_apply(const T* x, const T* coefficients, T* y, const BatchNormShape& shape);
template <class T>
void batchnorm_backward_coefficients(const T* dy, const T* x, const T* weight, const T* save_mean,
                                     const T* save_invstd, T* dweight, T* dbias, T* coefficients,
                                     const BatchNormShape& shape, BatchNormMode mode);
template <class T>
void batchnorm_dx(const T* dy, const T* x, const T* coefficients, T* dx, const BatchNormShape& shape);

// ---- elementwise --------------------------------------------------------------------------------

template <class T> void relu_forward(const T* x, T* y, int64_t n);
// PyTorch's threshold_backward on the result: dx = 0 where y <= 0, else dy (NaN y passes dy).
template <class T> void relu_backward(const T* y, const T* dy, T* dx, int64_t n);
template <class T> void add(const T* a, const T* b, T* out, int64_t n);  // out = a + b
template <class T> void accumulate(T* dst, const T* src, int64_t n);    // dst += src

// ---- pooling over planes (N*C of them) --------------------------------------------------------

struct PoolShape {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t kernel = 3, stride = 2, padding = 1;
  int64_t p() const { return (h + 2 * padding - kernel) / stride + 1; }
  int64_t q() const { return (w + 2 * padding - kernel) / stride + 1; }
};

// indices: flat h*W+w of each window's max within its plane. As PyTorch's CPU kernel: a value
// replaces the max when it is greater or NaN, so ties keep the first in scan order and the last
// NaN wins; a window of -inf reports its first valid element.
template <class T> void maxpool2d_forward(const T* x, T* y, int64_t* indices, const PoolShape& shape);
template <class T>
void maxpool2d_backward(const T* dy, const int64_t* indices, T* dx, const PoolShape& shape);

// (planes, hw) -> (planes) mean, and its backward dx = dy / hw.
template <class T> void adaptive_avgpool_forward(const T* x, T* y, int64_t planes, int64_t hw);
template <class T> void adaptive_avgpool_backward(const T* dy, T* dx, int64_t planes, int64_t hw);

// ---- linear: x (N,K), w (M,K), b (M), y (N,M) = x w^T + b ------------------------------------

struct LinearShape { int64_t n = 1, in = 1, out = 1; };

template <class T> void linear_forward(const T* x, const T* w, const T* b, T* y, const LinearShape& shape);
// dx (may be null) = dy w; dw = dy^T x; db = column sums of dy.
template <class T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, const LinearShape& shape);

// ---- loss: mean cross-entropy of logits (N,M) against labels in [0, M) -----------------------

// Returns the mean loss and keeps the softmax in probs. Checks every label before computing and
// throws Error(BadInput) naming the first bad sample and its value.
template <class T>
double cross_entropy_forward(const T* logits, const int64_t* labels, T* probs, int64_t n, int64_t m);
// dlogits = (probs - onehot(labels)) / N
template <class T>
void cross_entropy_backward(const T* probs, const int64_t* labels, T* dlogits, int64_t n, int64_t m);

// ---- optimizer ---------------------------------------------------------------------------------

// One torch.optim.SGD step on n parameters. momentum_buffer is written on the first step (a copy
// of d_p) and read afterwards; it may be null when momentum is 0.
template <class T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n, bool first_step,
                const SgdOptions& options);

// ---- loss scaling (torch.amp.GradScaler) -------------------------------------------------------

// grad *= inv_scale, the reciprocal of scale taken in double and rounded to float (left as it is
// where that is 1); returns whether any element was NaN or +-Inf.
bool unscale_gradient(float* grad, int64_t n, float scale);
// torch._amp_update_scale_ on one scale and growth tracker.
void update_loss_scale(float& scale, int32_t& growth_tracker, bool found_inf, const LossScaleOptions& options);

}  // namespace hookrt::cpu
