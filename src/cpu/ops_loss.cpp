// Mean cross-entropy through a numerically stable log-softmax (shift by the row's max, sum the
// exponentials in double); the softmax is kept for backward.
#include <cmath>
#include <string>

#include "cpu/ops.h"

namespace hookrt::cpu {
namespace {

void check_labels(const int64_t* labels, int64_t n, int64_t m) {
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= m)
      throw_bad_input("cross_entropy: label " + std::to_string(labels[i]) + " of sample " + std::to_string(i) +
                      " is out of range [0, " + std::to_string(m) + ")");
}

}  // namespace

template <class T>
double cross_entropy_forward(const T* logits, const int64_t* labels, T* probs, int64_t n, int64_t m) {
  check_labels(labels, n, m);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* row = logits + i * m;
    double max = row[0];
    for (int64_t j = 1; j < m; ++j) max = std::fmax(max, static_cast<double>(row[j]));
    double sum = 0;
    for (int64_t j = 0; j < m; ++j) sum += std::exp(row[j] - max);
    const double log_sum_exp = max + std::log(sum);
    for (int64_t j = 0; j < m; ++j) probs[i * m + j] = static_cast<T>(std::exp(row[j] - log_sum_exp));
    total += log_sum_exp - row[labels[i]];
  }
  return n > 0 ? total / static_cast<double>(n) : 0.0;
}

template <class T>
void cross_entropy_backward(const T* probs, const int64_t* labels, T* dlogits, int64_t n, int64_t m) {
  check_labels(labels, n, m);
  const double inv_n = 1.0 / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      const double onehot = j == labels[i] ? 1.0 : 0.0;
      dlogits[i * m + j] = static_cast<T>((probs[i * m + j] - onehot) * inv_n);
    }
  }
}

#define HOOKRT_INSTANTIATE_LOSS(T)                                                                \
  template double cross_entropy_forward<T>(const T*, const int64_t*, T*, int64_t, int64_t);       \
  template void cross_entropy_backward<T>(const T*, const int64_t*, T*, int64_t, int64_t);
HOOKRT_INSTANTIATE_LOSS(float)
HOOKRT_INSTANTIATE_LOSS(double)
#undef HOOKRT_INSTANTIATE_LOSS

}  // namespace hookrt::cpu
