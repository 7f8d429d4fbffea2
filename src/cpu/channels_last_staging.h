#pragma once
// ChannelsLastStaging — how the CPU reference runs a layout-aware op (convolution, batch norm,
// pooling) on channels-last tensors: the NCHW op on NCHW copies. Each 4-D operand is copied into
// NCHW order (exact: only elements move); the op writes NCHW stand-ins for the 4-D outputs;
// finish() moves each stand-in into its channels-last output. So a channels-last op gives exactly
// the NCHW op's values, which is what the GPU's NHWC kernels are held to. Operands of other ranks
// (batch norm's per-channel vectors) pass through untouched.
#include <deque>
#include <initializer_list>

#include "hookrt/tensor.h"

namespace hookrt::cpu {

class ChannelsLastStaging {
 public:
  explicit ChannelsLastStaging(const char* op) : op_(op) {}
  // Whether any defined tensor among `tensors` lies channels-last, not also in NCHW order (and so
  // the op must stage). A channels-last (N, C, 1, 1) tensor is NCHW as it lies.
  static bool wanted(std::initializer_list<const Tensor*> tensors);
  // A 4-D operand that must be channels-last, as an NCHW copy; throws naming it otherwise.
  Tensor in(const Tensor& t, const char* name) const;
  // A 4-D output that must be channels-last where defined: its NCHW stand-in, undefined where the
  // output is (the op then allocates it, or leaves it out where undefined means not wanted).
  Tensor& out(Tensor& t, const char* name);
  // A 4-D operand the op updates in place: its NCHW copy, moved back by finish().
  Tensor& in_out(Tensor& t, const char* name);
  // Moves every stand-in the op wrote into its channels-last output.
  void finish();

 private:
  struct Output {
    Tensor* target;
    Tensor stand_in;
  };
  void require_channels_last(const Tensor& t, const char* name) const;

  const char* op_;
  std::deque<Output> outputs_;  // a deque: out() hands out references into it
};

}  // namespace hookrt::cpu
