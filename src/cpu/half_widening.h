#pragma once
// HalfWidening — how the CPU reference runs an op on BF16 or F16 tensors: in F32, as autocast's
// kernels do. Each half operand is widened to an F32 copy (exact); the F32 op writes F32 stand-ins
// for the half outputs; finish() rounds each stand-in into its output, to nearest even (an F16
// result beyond 65504 becomes Inf, as on the GPU). So every result is rounded to half once, after
// F32 arithmetic, which is what the GPU's kernels and cuDNN's and cuBLAS's half paths (F32
// accumulation) compute, up to the order of their sums.
#include <deque>

#include "hookrt/tensor.h"

namespace hookrt::cpu {

class HalfWidening {
 public:
  // dtype: BF16 or F16, the one every half operand and output of the op has.
  HalfWidening(const char* op, DType dtype);
  // An operand that must have the op's half dtype, widened; throws naming it otherwise.
  Tensor in(const Tensor& t, const char* name) const;
  // An output that must have the op's half dtype where defined: its F32 stand-in, undefined where the output is
  // (the op then allocates it, or leaves it out where undefined means not wanted).
  Tensor& out(Tensor& t, const char* name);
  // An operand the op updates in place: its widened copy, rounded back by finish().
  Tensor& in_out(Tensor& t, const char* name);
  // Rounds every stand-in the op wrote into its output.
  void finish();

 private:
  struct Output {
    Tensor* target;
    Tensor stand_in;
  };
  void require_half(const Tensor& t, const char* name) const;

  const char* op_;
  DType dtype_;
  std::deque<Output> outputs_;  // a deque: out() hands out references into it
};

}  // namespace hookrt::cpu
