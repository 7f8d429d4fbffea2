#include "support/naive_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace hookrt::testing {
namespace {

void require_f64(const Tensor& t, const char* what) {
  if (!t.defined() || t.dtype() != DType::F64) throw Error(std::string("naive ops: ") + what + " must be a defined F64 tensor");
}

}  // namespace

Tensor naive_conv2d(const Tensor& x, const Tensor& w, int64_t stride, int64_t padding) {
  require_f64(x, "x");
  require_f64(w, "w");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t K = w.size(0), R = w.size(2), S = w.size(3);
  const int64_t P = (H + 2 * padding - R) / stride + 1, Q = (W + 2 * padding - S) / stride + 1;
  Tensor y = Tensor::zeros({N, K, P, Q}, DType::F64);
  const double* xd = x.data<double>();
  const double* wd = w.data<double>();
  double* yd = y.data<double>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double sum = 0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s) {
                const int64_t h = p * stride - padding + r, v = q * stride - padding + s;
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                sum += xd[((n * C + c) * H + h) * W + v] * wd[((k * C + c) * R + r) * S + s];
              }
          yd[((n * K + k) * P + p) * Q + q] = sum;
        }
  return y;
}

NaiveBatchNorm naive_batchnorm_training(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                        const Tensor& running_mean, const Tensor& running_var,
                                        double eps, double momentum) {
  require_f64(x, "x");
  const int64_t N = x.size(0), C = x.size(1), L = x.numel() / (N * C);
  NaiveBatchNorm out{Tensor::zeros(x.shape(), DType::F64), Tensor::zeros({C}, DType::F64),
                     Tensor::zeros({C}, DType::F64), running_mean.clone(), running_var.clone()};
  const double* xd = x.data<double>();
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) sum += xd[(n * C + c) * L + l];
    const double count = static_cast<double>(N * L), mean = sum / count;
    double squares = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) squares += (xd[(n * C + c) * L + l] - mean) * (xd[(n * C + c) * L + l] - mean);
    const double var = squares / count, invstd = 1.0 / std::sqrt(var + eps);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l)
        out.y.data<double>()[(n * C + c) * L + l] =
            (xd[(n * C + c) * L + l] - mean) * invstd * weight.data<double>()[c] + bias.data<double>()[c];
    out.mean.data<double>()[c] = mean;
    out.invstd.data<double>()[c] = invstd;
    out.running_mean.data<double>()[c] = (1 - momentum) * running_mean.data<double>()[c] + momentum * mean;
    out.running_var.data<double>()[c] = (1 - momentum) * running_var.data<double>()[c] + momentum * squares / (count - 1);
  }
  return out;
}

Tensor naive_batchnorm_inference(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 const Tensor& running_mean, const Tensor& running_var, double eps) {
  require_f64(x, "x");
  const int64_t N = x.size(0), C = x.size(1), L = x.numel() / (N * C);
  Tensor y = Tensor::zeros(x.shape(), DType::F64);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (n * C + c) * L + l;
        y.data<double>()[i] = (x.data<double>()[i] - running_mean.data<double>()[c]) /
                                  std::sqrt(running_var.data<double>()[c] + eps) * weight.data<double>()[c] +
                              bias.data<double>()[c];
      }
  return y;
}

Tensor naive_relu(const Tensor& x) {
  require_f64(x, "x");
  Tensor y = x.clone();
  for (int64_t i = 0; i < y.numel(); ++i)
    if (y.data<double>()[i] < 0) y.data<double>()[i] = 0;
  return y;
}

NaiveMaxPool naive_maxpool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  require_f64(x, "x");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t P = (H + 2 * padding - kernel) / stride + 1, Q = (W + 2 * padding - kernel) / stride + 1;
  NaiveMaxPool out{Tensor::zeros({N, C, P, Q}, DType::F64), Tensor::zeros({N, C, P, Q}, DType::I64)};
  for (int64_t plane = 0; plane < N * C; ++plane)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        // The window's valid positions in scan order.
        std::vector<int64_t> positions;
        for (int64_t h = p * stride - padding; h < p * stride - padding + kernel; ++h)
          for (int64_t v = q * stride - padding; v < q * stride - padding + kernel; ++v)
            if (h >= 0 && h < H && v >= 0 && v < W) positions.push_back(h * W + v);
        const double* in = x.data<double>() + plane * H * W;
        int64_t chosen = positions.front();
        double best = -std::numeric_limits<double>::infinity();
        for (int64_t pos : positions) best = std::max(best, in[pos]);  // ignores NaN
        for (auto it = positions.rbegin(); it != positions.rend(); ++it)  // the first maximum, scanning back
          if (in[*it] == best) chosen = *it;
        for (int64_t pos : positions)  // the last NaN, if any, overrides
          if (std::isnan(in[pos])) chosen = pos;
        out.y.data<double>()[(plane * P + p) * Q + q] = in[chosen];
        out.indices.data<int64_t>()[(plane * P + p) * Q + q] = chosen;
      }
  return out;
}

Tensor naive_adaptive_avgpool(const Tensor& x) {
  require_f64(x, "x");
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2) * x.size(3);
  Tensor y = Tensor::zeros({N, C, 1, 1}, DType::F64);
  for (int64_t plane = 0; plane < N * C; ++plane) {
    double sum = 0;
    for (int64_t l = 0; l < L; ++l) sum += x.data<double>()[plane * L + l];
    y.data<double>()[plane] = sum / static_cast<double>(L);
  }
  return y;
}

Tensor naive_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  require_f64(x, "x");
  const int64_t N = x.size(0), K = w.size(1), M = w.size(0);
  Tensor y = Tensor::zeros({N, M}, DType::F64);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      double sum = b.data<double>()[m];
      for (int64_t k = 0; k < K; ++k) sum += x.data<double>()[n * K + k] * w.data<double>()[m * K + k];
      y.data<double>()[n * M + m] = sum;
    }
  return y;
}

double naive_cross_entropy(const Tensor& logits, const Tensor& labels) {
  require_f64(logits, "logits");
  const int64_t N = logits.size(0), M = logits.size(1);
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const double* row = logits.data<double>() + n * M;
    double max = row[0];
    for (int64_t m = 1; m < M; ++m) max = std::max(max, row[m]);
    double denominator = 0;
    for (int64_t m = 0; m < M; ++m) denominator += std::exp(row[m] - max);
    const double log_softmax = row[labels.data<int64_t>()[n]] - max - std::log(denominator);
    total += -log_softmax;
  }
  return total / static_cast<double>(N);
}

}  // namespace hookrt::testing
