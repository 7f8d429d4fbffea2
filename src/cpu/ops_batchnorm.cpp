// Batch normalisation, per channel over (N, H*W), as PyTorch's CPU kernels compute it: statistics
// accumulated in double (two passes: mean, then the centred sum of squares), the normalisation
// applied as y = x * scale + shift with scale and shift folded per channel.
#include <cmath>
#include <string>

#include "cpu/ops.h"

namespace hookrt::cpu {
namespace {

constexpr int64_t kParallelElements = 1 << 15;  // below this, threads cost more than they save

// The (sample i, channel c) plane of x (N, C, HW).
template <class T>
T* plane(T* x, const BatchNormShape& s, int64_t i, int64_t c) {
  return x + (i * s.c + c) * s.hw;
}

template <class T>
double channel_mean(const T* x, const BatchNormShape& s, int64_t c) {
  double sum = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    const T* in = plane(x, s, i, c);
    for (int64_t j = 0; j < s.hw; ++j) sum += in[j];
  }
  return sum / static_cast<double>(s.count());
}

template <class T>
double channel_centred_sum_of_squares(const T* x, const BatchNormShape& s, int64_t c, double mean) {
  double sum = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    const T* in = plane(x, s, i, c);
    for (int64_t j = 0; j < s.hw; ++j) {
      const double d = in[j] - mean;
      sum += d * d;
    }
  }
  return sum;
}

// y = (x - mean) * invstd * weight + bias, folded into y = x * scale + shift.
template <class T>
void normalise_channel(const T* x, T* y, const BatchNormShape& s, int64_t c, double mean, double invstd,
                       double weight, double bias) {
  const T scale = static_cast<T>(invstd * weight);
  const T shift = static_cast<T>(bias - mean * invstd * weight);
  for (int64_t i = 0; i < s.n; ++i) {
    const T* in = plane(x, s, i, c);
    T* out = plane(y, s, i, c);
    for (int64_t j = 0; j < s.hw; ++j) out[j] = in[j] * scale + shift;
  }
}

}  // namespace

template <class T>
void batchnorm_forward_training(const T* x, const T* weight, const T* bias, T* running_mean,
                                T* running_var, T* y, T* save_mean, T* save_invstd,
                                const BatchNormShape& s, double eps, double momentum) {
  const int64_t count = s.count();
  if (count <= 1)
    throw_bad_input("batchnorm (training): expected more than 1 value per channel, got " + std::to_string(count) +
                    " (N=" + std::to_string(s.n) + ", H*W=" + std::to_string(s.hw) + ")");
#pragma omp parallel for schedule(dynamic) if (s.n * s.c * s.hw > kParallelElements)
  for (int64_t c = 0; c < s.c; ++c) {
    const double mean = channel_mean(x, s, c);
    const double squares = channel_centred_sum_of_squares(x, s, c, mean);
    const double biased_var = squares / static_cast<double>(count);
    const double unbiased_var = squares / static_cast<double>(count - 1);
    const double invstd = 1.0 / std::sqrt(biased_var + eps);
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    running_mean[c] = static_cast<T>(momentum * mean + (1.0 - momentum) * running_mean[c]);
    running_var[c] = static_cast<T>(momentum * unbiased_var + (1.0 - momentum) * running_var[c]);
    normalise_channel(x, y, s, c, mean, invstd, weight[c], bias[c]);
  }
}

template <class T>
void batchnorm_forward_inference(const T* x, const T* weight, const T* bias, const T* running_mean,
                                 const T* running_var, T* y, T* save_mean, T* save_invstd,
                                 const BatchNormShape& s, double eps) {
#pragma omp parallel for schedule(dynamic) if (s.n * s.c * s.hw > kParallelElements)
  for (int64_t c = 0; c < s.c; ++c) {
    const double mean = running_mean[c];
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    normalise_channel(x, y, s, c, mean, invstd, weight[c], bias[c]);
  }
}

// With xhat = (x - mean) * invstd, sum_dy = Σ dy and dot = Σ dy (x - mean):
//   dbias = sum_dy, dweight = dot * invstd,
//   training:  dx = (dy - sum_dy/count - (x - mean) * dot * invstd² / count) * invstd * weight
//   inference: dx = dy * invstd * weight (the statistics are constants)
template <class T>
void batchnorm_backward(const T* dy, const T* x, const T* weight, const T* save_mean,
                        const T* save_invstd, T* dx, T* dweight, T* dbias, const BatchNormShape& s,
                        BatchNormMode mode) {
  const double count = static_cast<double>(s.count());
#pragma omp parallel for schedule(dynamic) if (s.n * s.c * s.hw > kParallelElements)
  for (int64_t c = 0; c < s.c; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_dy = 0, dot = 0;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* g = plane(dy, s, i, c);
      const T* in = plane(x, s, i, c);
      for (int64_t j = 0; j < s.hw; ++j) {
        sum_dy += g[j];
        dot += g[j] * (in[j] - mean);
      }
    }
    if (dbias) dbias[c] = static_cast<T>(sum_dy);
    if (dweight) dweight[c] = static_cast<T>(dot * invstd);
    if (!dx) continue;
    const bool training = mode == BatchNormMode::Training;
    const T gain = static_cast<T>(invstd * weight[c]);
    const T centre = static_cast<T>(mean);
    const T grad_mean = training ? static_cast<T>(sum_dy / count) : T(0);
    const T projection = training ? static_cast<T>(dot * invstd * invstd / count) : T(0);
    for (int64_t i = 0; i < s.n; ++i) {
      const T* g = plane(dy, s, i, c);
      const T* in = plane(x, s, i, c);
      T* out = plane(dx, s, i, c);
      if (!training) {  // x is not read: an infinite x must not make dx NaN, as in PyTorch
        for (int64_t j = 0; j < s.hw; ++j) out[j] = g[j] * gain;
        continue;
      }
      for (int64_t j = 0; j < s.hw; ++j) out[j] = (g[j] - grad_mean - (in[j] - centre) * projection) * gain;
    }
  }
}

#define HOOKRT_INSTANTIATE_BATCHNORM(T)                                                             \
  template void batchnorm_forward_training<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*,     \
                                              const BatchNormShape&, double, double);               \
  template void batchnorm_forward_inference<T>(const T*, const T*, const T*, const T*, const T*, T*, \
                                               T*, T*, const BatchNormShape&, double);              \
  template void batchnorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,  \
                                      const BatchNormShape&, BatchNormMode);
HOOKRT_INSTANTIATE_BATCHNORM(float)
HOOKRT_INSTANTIATE_BATCHNORM(double)
#undef HOOKRT_INSTANTIATE_BATCHNORM

}  // namespace hookrt::cpu
