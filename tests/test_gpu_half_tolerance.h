#pragma once
// The half dtypes of autocast (BF16 and F16) for the GPU op tests that run each half case in both,
// and the bound of a half result that both backends compute in F32 in different orders and round
// once: gpu_ops.h's bf16_tolerance, with F16's step for F16 results.
#include "support/gpu_ops.h"

namespace hookrt::testing::gpu_ops {

inline constexpr DType kHalfDtypes[] = {DType::BF16, DType::F16};

// One step of the half dtype plus `absolute` (the F32 part, d): a BF16 step is at most 2^-7·|x|
// (8 significant bits); an F16 step at most 2^-10·|x| (11 significant bits) above F16's normal
// range and 2^-24 below it (its subnormals), which the absolute term takes in. The comparison is
// agrees_in_bf16's, element by element, for whichever half dtype the result has.
inline Tolerance half_tolerance(DType half, double absolute, const char* why) {
  if (half == DType::BF16) return bf16_tolerance(absolute, why);
  return Tolerance{
      .max_relative = 0, .why = why, .bf16_relative = 0x1p-10, .bf16_absolute = absolute + 0x1p-24};
}

}  // namespace hookrt::testing::gpu_ops
