// One step of torch.optim.SGD (its _single_tensor_sgd), element by element in the parameter's type:
//   d_p = grad + weight_decay * p
//   buf = d_p on the first step, else momentum * buf + (1 - dampening) * d_p
//   d_p = d_p + momentum * buf (nesterov) or buf
//   p  -= lr * d_p
#include "cpu/ops.h"

namespace hookrt::cpu {

template <class T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n, bool first_step, const SgdOptions& o) {
  const T weight_decay = static_cast<T>(o.weight_decay), momentum = static_cast<T>(o.momentum);
  const T keep = static_cast<T>(1.0 - o.dampening), lr = static_cast<T>(o.lr);
  const bool use_momentum = o.momentum != 0.0;
  if (use_momentum && !momentum_buffer) throw Error("sgd_update: momentum is set but no momentum buffer was given");
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    T d_p = grad[i];
    if (o.weight_decay != 0.0) d_p += weight_decay * param[i];
    if (use_momentum) {
      const T buf = first_step ? d_p : momentum * momentum_buffer[i] + keep * d_p;
      momentum_buffer[i] = buf;
      d_p = o.nesterov ? d_p + momentum * buf : buf;
    }
    param[i] -= lr * d_p;
  }
}

template void sgd_update<float>(float*, const float*, float*, int64_t, bool, const SgdOptions&);
template void sgd_update<double>(double*, const double*, double*, int64_t, bool, const SgdOptions&);

}  // namespace hookrt::cpu
