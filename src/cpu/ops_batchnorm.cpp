// Batch normalisation, per channel over (N, H*W), as PyTorch's CPU kernels compute it: statistics
// accumulated in double (two passes: mean, then the centred sum of squares), the normalisation
// applied as y = x * scale + shift with scale and shift folded per channel. Each op is its
// per-channel part (the coefficients) and then its elementwise part, which the split forms
// (Backend::splits_batchnorm) run one at a time.
#include <cmath>
#include <string>
#include <vector>

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
void fold_channel(T* coefficients, const BatchNormShape& s, int64_t c, double mean, double invstd, double weight,
                  double bias) {
  coefficients[c] = static_cast<T>(invstd * weight);
  coefficients[s.c + c] = static_cast<T>(bias - mean * invstd * weight);
}

template <class T>
void apply_channel(const T* x, const T* coefficients, T* y, const BatchNormShape& s, int64_t c) {
  const T scale = coefficients[c], shift = coefficients[s.c + c];
  for (int64_t i = 0; i < s.n; ++i) {
    const T* in = plane(x, s, i, c);
    T* out = plane(y, s, i, c);
    for (int64_t j = 0; j < s.hw; ++j) out[j] = in[j] * scale + shift;
  }
}

// Channel c's dx from its coefficients (gain, centre, grad_mean, projection); x null: inference.
template <class T>
void dx_channel(const T* dy, const T* x, const T* coefficients, T* dx, const BatchNormShape& s, int64_t c) {
  const T gain = coefficients[c], centre = coefficients[s.c + c];
  const T grad_mean = coefficients[2 * s.c + c], projection = coefficients[3 * s.c + c];
  for (int64_t i = 0; i < s.n; ++i) {
    const T* g = plane(dy, s, i, c);
    T* out = plane(dx, s, i, c);
    if (!x) {  // inference does not read x: an infinite x must not make dx NaN, as in PyTorch
      for (int64_t j = 0; j < s.hw; ++j) out[j] = g[j] * gain;
      continue;
    }
    const T* in = plane(x, s, i, c);
    for (int64_t j = 0; j < s.hw; ++j) out[j] = (g[j] - grad_mean - (in[j] - centre) * projection) * gain;
  }
}

// The per-channel scratch a whole op folds its coefficients into.
template <class T>
std::vector<T> coefficient_rows(const BatchNormShape& s, int rows) {
  return std::vector<T>(static_cast<size_t>(rows * s.c));
}

bool parallel(const BatchNormShape& s) { return s.n * s.c * s.hw > kParallelElements; }

// Inference's per-channel part: the running statistics, read only.
template <class T>
void inference_coefficients(const T* weight, const T* bias, const T* running_mean, const T* running_var,
                            T* save_mean, T* save_invstd, T* coefficients, const BatchNormShape& s, double eps) {
  for (int64_t c = 0; c < s.c; ++c) {
    const double mean = running_mean[c];
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    fold_channel(coefficients, s, c, mean, invstd, weight[c], bias[c]);
  }
}

}  // namespace

template <class T>
void batchnorm_forward_coefficients(const T* x, const T* weight, const T* bias, T* running_mean, T* running_var,
                                    T* save_mean, T* save_invstd, T* coefficients, const BatchNormShape& s,
                                    BatchNormMode mode, double eps, double momentum) {
  if (mode == BatchNormMode::Inference)
    return inference_coefficients(weight, bias, running_mean, running_var, save_mean, save_invstd, coefficients, s,
                                  eps);
  const int64_t count = s.count();
  if (count <= 1)
    throw_bad_input("batchnorm (training): expected more than 1 value per channel, got " + std::to_string(count) +
                    " (N=" + std::to_string(s.n) + ", H*W=" + std::to_string(s.hw) + ")");
#pragma omp parallel for schedule(dynamic) if (parallel(s))
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
    fold_channel(coefficients, s, c, mean, invstd, weight[c], bias[c]);
  }
}

template <class T>
void batchnorm_apply(const T* x, const T* coefficients, T* y, const BatchNormShape& s) {
#pragma omp parallel for schedule(dynamic) if (parallel(s))
  for (int64_t c = 0; c < s.c; ++c) apply_channel(x, coefficients, y, s, c);
}

template <class T>
void batchnorm_forward_training(const T* x, const T* weight, const T* bias, T* running_mean,
                                T* running_var, T* y, T* save_mean, T* save_invstd,
                                const BatchNormShape& s, double eps, double momentum) {
  std::vector<T> coefficients = coefficient_rows<T>(s, 2);
  batchnorm_forward_coefficients(x, weight, bias, running_mean, running_var, save_mean, save_invstd,
                                 coefficients.data(), s, BatchNormMode::Training, eps, momentum);
  batchnorm_apply(x, coefficients.data(), y, s);
}

template <class T>
void batchnorm_forward_inference(const T* x, const T* weight, const T* bias, const T* running_mean,
                                 const T* running_var, T* y, T* save_mean, T* save_invstd,
                                 const BatchNormShape& s, double eps) {
  std::vector<T> coefficients = coefficient_rows<T>(s, 2);
  inference_coefficients(weight, bias, running_mean, running_var, save_mean, save_invstd, coefficients.data(), s,
                         eps);
  batchnorm_apply(x, coefficients.data(), y, s);
}

// With sum_dy = Σ dy and dot = Σ dy (x - mean):
//   dbias = sum_dy, dweight = dot * invstd,
//   training:  dx = (dy - sum_dy/count - (x - mean) * dot * invstd² / count) * invstd * weight
//   inference: dx = dy * invstd * weight (the statistics are constants)
template <class T>
void batchnorm_backward_coefficients(const T* dy, const T* x, const T* weight, const T* save_mean,
                                     const T* save_invstd, T* dweight, T* dbias, T* coefficients,
                                     const BatchNormShape& s, BatchNormMode mode) {
  const double count = static_cast<double>(s.count());
  const bool training = mode == BatchNormMode::Training;
#pragma omp parallel for schedule(dynamic) if (parallel(s))
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
    if (!coefficients) continue;
    coefficients[c] = static_cast<T>(invstd * weight[c]);
    coefficients[s.c + c] = static_cast<T>(mean);
    coefficients[2 * s.c + c] = training ? static_cast<T>(sum_dy / count) : T(0);
    coefficients[3 * s.c + c] = training ? static_cast<T>(dot * invstd * invstd / count) : T(0);
  }
}

template <class T>
void batchnorm_dx(const T* dy, const T* x, const T* coefficients, T* dx, const BatchNormShape& s) {
#pragma omp parallel for schedule(dynamic) if (parallel(s))
  for (int64_t c = 0; c < s.c; ++c) dx_channel(dy, x, coefficients, dx, s, c);
}

template <class T>
void batchnorm_backward(const T* dy, const T* x, const T* weight, const T* save_mean,
                        const T* save_invstd, T* dx, T* dweight, T* dbias, const BatchNormShape& s,
                        BatchNormMode mode) {
  std::vector<T> coefficients = coefficient_rows<T>(s, dx ? 4 : 0);
  batchnorm_backward_coefficients(dy, x, weight, save_mean, save_invstd, dweight, dbias,
                                  dx ? coefficients.data() : nullptr, s, mode);
  if (dx) batchnorm_dx(dy, mode == BatchNormMode::Training ? x : nullptr, coefficients.data(), dx, s);
}

#define HOOKRT_INSTANTIATE_BATCHNORM(T)                                                             \
  template void batchnorm_forward_training<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*,     \
                                              const BatchNormShape&, double, double);               \
  template void batchnorm_forward_inference<T>(const T*, const T*, const T*, const T*, const T*, T*, \
                                               T*, T*, const BatchNormShape&, double);              \
  template void batchnorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,  \
                                      const BatchNormShape&, BatchNormMode);                        \
  template void batchnorm_forward_coefficients<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*,  \
                                                  const BatchNormShape&, BatchNormMode, double,     \
                                                  double);                                          \
  template void batchnorm_apply<T>(const T*, const T*, T*, const BatchNormShape&);                 \
  template void batchnorm_backward_coefficients<T>(const T*, const T*, const T*, const T*, const T*, \
                                                   T*, T*, T*, const BatchNormShape&,               \
                                                   BatchNormMode);                                  \
  template void batchnorm_dx<T>(const T*, const T*, const T*, T*, const BatchNormShape&);
HOOKRT_INSTANTIATE_BATCHNORM(float)
HOOKRT_INSTANTIATE_BATCHNORM(double)
#undef HOOKRT_INSTANTIATE_BATCHNORM

}  // namespace hookrt::cpu
