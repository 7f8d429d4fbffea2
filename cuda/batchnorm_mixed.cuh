#pragma once
// Batch norm on BF16 or F16 activations with F32 parameters and statistics (PyTorch's mixed batch_norm
// under autocast), queued on `stream`. cuDNN's legacy batch-norm calls are not documented to take
// BF16 data (PyTorch does not send them any; F16 goes the same way, so that both half dtypes
// round alike), so these are our kernels, which follow the CPU
// reference's formulas (src/cpu/ops_batchnorm.cpp): statistics and sums in double, the per-channel
// scale and shift (or backward coefficients) in F32, and each element computed in F32 with the
// reference's roundings, then rounded once to the half dtype. Each channel's sums are split over several
// blocks whose partial sums, kept in `scratch`, are added in a fixed order: the results are the
// same on every run. The activations lie in the dims' format, NCHW or channels-last (NHWC, walked
// by batchnorm_channels_last.cuh); both give the same results but for the order of the sums. The
// kernels take F32 activations too (CudnnBatchNorm sends them F32 inference backwards in NHWC).
#include <cuda_runtime.h>

#include <cstddef>

#include "batchnorm_args.h"

namespace hookrt::cuda {

// The scratch one call of these kernels needs for `dims` (partial sums and per-channel
// coefficients).
size_t batchnorm_mixed_scratch_bytes(const BatchNormDims& dims);

// Training: the batch's mean and biased variance normalise y; the running statistics are updated
// with the unbiased variance; save_mean and save_invstd get the batch mean and 1/sqrt(var + eps).
// Inference: the running statistics normalise y and save_* receive them as mean and invstd. A
// training batch needs more than one value per channel (the caller checks).
void batchnorm_mixed_forward(const BatchNormForwardArgs& args, const BatchNormDims& dims,
                             const BatchNormSettings& settings, void* scratch, cudaStream_t stream);

// With sum_dy = Σ dy and dot = Σ dy (x - mean) per channel: dbias = sum_dy, dweight = dot * invstd,
// and dx = (dy - sum_dy / count - (x - mean) dot invstd² / count) invstd weight in training,
// dy invstd weight in inference (the statistics are constants there).
void batchnorm_mixed_backward(const BatchNormBackwardArgs& args, const BatchNormDims& dims,
                              const BatchNormSettings& settings, void* scratch,
                              cudaStream_t stream);

// The same two ops in two parts each (Backend::splits_batchnorm), with the bits of the whole ones.
// The per-channel parts write F32 coefficients, rows of C: forward (2, C) scale and shift;
// backward (4, C) gain, centre, grad_mean and projection (batchnorm_terms.cuh). The elementwise
// parts read them: y = x * scale + shift; dx from dy and x (x null: inference's dy * gain). With
// `relu`, the apply writes relu(y), or relu(y + residual) where residual is given (y itself never
// written; batchnorm_terms.cuh's after_apply).
void batchnorm_mixed_forward_coefficients(const BatchNormForwardArgs& args, const BatchNormDims& dims,
                                          const BatchNormSettings& settings, float* coefficients, void* scratch,
                                          cudaStream_t stream);
void batchnorm_mixed_apply(const void* x, void* y, const float* coefficients, DType activations,
                           const BatchNormDims& dims, cudaStream_t stream, const void* residual = nullptr,
                           bool relu = false);
// With `relu_forward` (the forward's (2, C)), backward_coefficients takes args.dy as the dy of
// the ReLU that computed this batch norm's output unwritten (ProducingOp::BatchNormReluDx) and
// masks it as that ReLU's backward would (batchnorm_terms.cuh's dy_through_relu); coefficients
// then has 6 rows, the last two relu_forward's, and dx with `through_relu` reads them so (x
// given: training).
void batchnorm_mixed_backward_coefficients(const BatchNormBackwardArgs& args, const BatchNormDims& dims,
                                           const BatchNormSettings& settings, float* coefficients, void* scratch,
                                           cudaStream_t stream, const float* relu_forward = nullptr);
void batchnorm_mixed_dx(const void* dy, const void* x, void* dx, const float* coefficients, DType activations,
                        const BatchNormDims& dims, cudaStream_t stream, bool through_relu = false);

}  // namespace hookrt::cuda
