#pragma once
// One launch over many tensors (the idea of PyTorch's multi_tensor_apply): up to kTensorListSize
// tensors' pointers travel by value in the launch's parameters, so nothing is uploaded first, and
// tensor t's elements go to blocks [first_block[t], first_block[t + 1]), so that a small tensor
// gets one block and a large one many. An item is any struct with an element count `n`; the
// kernel takes the list as `const __grid_constant__ TensorList<Item>`, read where the launch put
// it rather than copied into each thread.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "launch.cuh"

namespace hookrt::cuda {

// Keeps a list of 32-byte items (SGD's) at about 2.3 KB, under the 4 KB of launch parameters
// every architecture takes.
constexpr int kTensorListSize = 64;

template <class Item>
struct TensorList {
  Item tensors[kTensorListSize];
  int first_block[kTensorListSize + 1];
  int count;
};

namespace tensor_list {

constexpr int64_t kElementsPerThread = 8;
constexpr int64_t kElementsPerBlock = kLinearBlock * kElementsPerThread;
// A tensor's blocks stop growing here; they then cover it with a stride.
constexpr int64_t kMaxBlocksPerTensor = 8192;

inline int blocks_for(int64_t n) {
  return static_cast<int>(std::clamp<int64_t>((n + kElementsPerBlock - 1) / kElementsPerBlock, 1, kMaxBlocksPerTensor));
}

}  // namespace tensor_list

// Where a block's threads work in its tensor: the tensor's index in the list, the first element
// of this thread, and the stride between its elements.
struct ListPosition {
  int tensor;
  int64_t first, stride;
};

template <class Item>
__device__ __forceinline__ ListPosition list_position(const TensorList<Item>& list) {
  int t = 0;  // at most kTensorListSize steps, the same in every thread of the block
  while (t + 1 < list.count && list.first_block[t + 1] <= static_cast<int>(blockIdx.x)) ++t;
  const int64_t blocks = list.first_block[t + 1] - list.first_block[t];
  return {t, (static_cast<int64_t>(blockIdx.x) - list.first_block[t]) * blockDim.x + threadIdx.x,
          blocks * blockDim.x};
}

// Calls launch(list, blocks) for each kTensorListSize of `items` that have elements, in order. An
// empty tensor gets no block (it may have no address); check(item) is called on every other item
// first and throws for one it refuses.
template <class Item, class Check, class Launch>
void for_each_tensor_list(const Item* items, int count, Check check, Launch launch) {
  int next = 0;
  while (next < count) {
    TensorList<Item> list{};
    int blocks = 0;
    for (; next < count && list.count < kTensorListSize; ++next) {
      if (items[next].n == 0) continue;
      check(items[next]);
      list.tensors[list.count] = items[next];
      list.first_block[list.count] = blocks;
      blocks += tensor_list::blocks_for(items[next].n);
      ++list.count;
    }
    if (list.count == 0) return;
    list.first_block[list.count] = blocks;
    launch(list, blocks);
  }
}

}  // namespace hookrt::cuda
