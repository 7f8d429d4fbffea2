#pragma once
// Code that compiles for both sides: the CUDA kernels call it and the CPU tests hold it to a
// reference, with no GPU needed.
//
// HOOKRT_HOST_DEVICE marks such a function; HOOKRT_HOST_DEVICE_INLINE one that a kernel must have
// inlined (a call would move the arrays it takes by reference from registers to local memory).
// HOOKRT_UNROLL asks nvcc to unroll the loop that follows, for the same reason.
#if defined(__CUDACC__)
#define HOOKRT_HOST_DEVICE __host__ __device__
#define HOOKRT_HOST_DEVICE_INLINE __host__ __device__ __forceinline__
#define HOOKRT_UNROLL _Pragma("unroll")
#else
#define HOOKRT_HOST_DEVICE
#define HOOKRT_HOST_DEVICE_INLINE inline
#define HOOKRT_UNROLL
#endif
