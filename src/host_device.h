#pragma once
// Code that compiles for both sides: the CUDA kernels call it and the CPU tests hold it to a
// reference, with no GPU needed.
//
// HOOKRT_HOST_DEVICE marks such a function. HOOKRT_UNROLL asks nvcc to unroll the loop that
// follows: a register array indexed by a loop that is not unrolled moves to local memory.
#if defined(__CUDACC__)
#define HOOKRT_HOST_DEVICE __host__ __device__
#define HOOKRT_UNROLL _Pragma("unroll")
#else
#define HOOKRT_HOST_DEVICE
#define HOOKRT_UNROLL
#endif
