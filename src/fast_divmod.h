#pragma once
// Division by a divisor fixed before a kernel runs, as a multiply-high, an add and a shift (the
// round-up method of Granlund and Montgomery): a memory-bound kernel that needs each element's
// channel would otherwise spend more time in integer division than in reading the tensor. Made on
// the host, used on both sides (the CPU tests hold it to the `/` operator).
#include <cstdint>

#include "hookrt/error.h"
#include "host_device.h"

namespace hookrt {

class FastDivmod {
 public:
  // Dividends up to this one divide exactly: the add below then cannot carry out of 32 bits.
  static constexpr uint32_t kMaxDividend = 0x7fffffffu;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t divisor) : divisor_(divisor) {
    if (divisor == 0) throw Error("FastDivmod: division by zero");
    while ((uint64_t{1} << shift_) < divisor) ++shift_;  // shift = ceil(log2(divisor))
    // 2^32 * (2^shift - divisor) / divisor + 1 < 2^32, as 2^shift < 2 * divisor.
    multiplier_ = static_cast<uint32_t>((((uint64_t{1} << shift_) - divisor) << 32) / divisor + 1);
  }

  HOOKRT_HOST_DEVICE uint32_t divisor() const { return divisor_; }
  // n / divisor, for n <= kMaxDividend.
  HOOKRT_HOST_DEVICE uint32_t divide(uint32_t n) const { return (high_product(n, multiplier_) + n) >> shift_; }
  // n % divisor, for n <= kMaxDividend.
  HOOKRT_HOST_DEVICE uint32_t remainder(uint32_t n) const { return n - divide(n) * divisor_; }

 private:
  static HOOKRT_HOST_DEVICE uint32_t high_product(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
    return __umulhi(a, b);
#else
    return static_cast<uint32_t>((uint64_t{a} * b) >> 32);
#endif
  }

  uint32_t divisor_ = 1;
  uint32_t multiplier_ = 1;
  uint32_t shift_ = 0;
};

}  // namespace hookrt
