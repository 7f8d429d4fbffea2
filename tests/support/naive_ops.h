#pragma once
// Naive, obviously-correct definitions of the ResNet ops in double precision: the oracles that the
// CPU ops (and, through them, the CUDA ops) are held to. Written straight from the definitions,
// with no tricks and no speed: a direct 7-loop convolution, per-window scans, textbook formulas.
// All tensors are host F64 (labels I64); results are new tensors.
#include <cstdint>

#include "hookrt/tensor.h"

namespace hookrt::testing {

// y[n,k,p,q] = sum over c,r,s of x[n,c,p*stride-padding+r, q*stride-padding+s] * w[k,c,r,s]
// (terms outside the input are zero).
Tensor naive_conv2d(const Tensor& x, const Tensor& w, int64_t stride, int64_t padding);

struct NaiveBatchNorm {
  Tensor y;
  Tensor mean, invstd;                  // (C) batch mean and 1/sqrt(biased var + eps)
  Tensor running_mean, running_var;     // (C) after PyTorch's update (unbiased var)
};
// Training mode: normalise with the batch statistics, update copies of the running statistics.
NaiveBatchNorm naive_batchnorm_training(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                        const Tensor& running_mean, const Tensor& running_var,
                                        double eps, double momentum);
// Inference mode: normalise with the running statistics.
Tensor naive_batchnorm_inference(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 const Tensor& running_mean, const Tensor& running_var, double eps);

// max(x, 0), NaN kept.
Tensor naive_relu(const Tensor& x);

struct NaiveMaxPool {
  Tensor y;
  Tensor indices;  // I64, flat h*W+w within the plane
};
// Each window's value is its last NaN if it has one, else its maximum at the first position
// (scan order) that holds it; a window of -inf reports its first valid element.
NaiveMaxPool naive_maxpool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding);

// (N,C,H,W) -> (N,C,1,1) mean.
Tensor naive_adaptive_avgpool(const Tensor& x);

// x (N,K), w (M,K), b (M): y = x w^T + b.
Tensor naive_linear(const Tensor& x, const Tensor& w, const Tensor& b);

// mean over samples of -log(softmax(logits)[label]), as -(logit[label] - max - log Σ exp(logit - max))
// so that large logits do not overflow the oracle itself.
double naive_cross_entropy(const Tensor& logits, const Tensor& labels);

}  // namespace hookrt::testing
