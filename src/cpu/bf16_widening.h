#pragma once
// Bf16Widening — how the CPU reference runs an op on BF16 tensors: in F32, as autocast's kernels
// do. Each BF16 operand is widened to an F32 copy (exact); the F32 op writes F32 stand-ins for the
// BF16 outputs; finish() rounds each stand-in into its output, to nearest even. So every result
// is rounded to BF16 once, after F32 arithmetic, which is what the GPU's kernels and cuDNN's and
// cuBLAS's BF16 paths (F32 accumulation) compute, up to the order of their sums.
#include <deque>

#include "hookrt/tensor.h"

namespace hookrt::cpu {

class Bf16Widening {
 public:
  explicit Bf16Widening(const char* op) : op_(op) {}
  // An operand that must be BF16, widened; throws naming it otherwise.
  Tensor in(const Tensor& t, const char* name) const;
  // An output that must be BF16 where defined: its F32 stand-in, undefined where the output is
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
  void require_bf16(const Tensor& t, const char* name) const;

  const char* op_;
  std::deque<Output> outputs_;  // a deque: out() hands out references into it
};

}  // namespace hookrt::cpu
