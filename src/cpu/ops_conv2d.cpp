// Convolution as im2col + GEMM. For a chunk of g samples, im2col lays the receptive fields out as
// a (C*R*S, g*P*Q) matrix `col`, so that
//   forward:         y    (K, g*P*Q)  = w (K, C*R*S)      * col
//   backward data:   dcol (C*R*S, g*P*Q) = w^T            * dy   (then col2im sums dcol into dx)
//   backward filter: dw   (K, C*R*S) += dy (K, g*P*Q)     * col^T
// Large feature maps take one sample per GEMM (the GEMM is wide already and y is written in
// place); small ones are batched so that the weights are packed once for the whole chunk.
// Threads (see ops_gemm.h): whole chunks go to OpenMP threads when there are enough of them (each
// thread with its own scratch, and its own partial dw in backward filter); otherwise chunks run
// in turn with im2col, col2im and the GEMM's columns split across the threads.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "cpu/ops_gemm.h"

namespace hookrt::cpu {
namespace {

using detail::GemmArgs;
using detail::parallel_gemm;
using detail::scratch;
using detail::Transpose;

constexpr int64_t kMinGemmColumns = 2048;       // below this, batch samples into one GEMM
constexpr int64_t kMaxChunkElements = 1 << 24;  // cap on the batched col buffer (64 MiB in fp32)
constexpr int64_t kParallelElements = 1 << 15;  // below this, threads cost more than they save

// Output positions o in [0, outputs) whose input index o*stride + offset lies in [0, size).
struct ValidSpan {
  int64_t lo = 0, hi = 0;
};

ValidSpan valid_span(int64_t offset, int64_t stride, int64_t size, int64_t outputs) {
  ValidSpan span;
  span.lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  span.hi = size - 1 - offset < 0 ? 0 : (size - 1 - offset) / stride + 1;
  span.hi = std::min(span.hi, outputs);
  span.lo = std::min(span.lo, span.hi);
  return span;
}

// 1x1, stride 1, no padding: one sample's col is the sample itself.
bool is_pointwise(const ConvShape& s) {
  return s.r == 1 && s.s == 1 && s.stride == 1 && s.padding == 0;
}

// col (C*R*S, g*P*Q) from the g samples at x.
template <class T>
void im2col(const T* x, T* col, const ConvShape& s, int64_t g) {
  const int64_t P = s.p(), Q = s.q(), PQ = P * Q, cols = g * PQ, rows = s.c * s.r * s.s;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelElements)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t c = row / (s.r * s.s), kr = (row / s.s) % s.r, ks = row % s.s;
    const ValidSpan ps = valid_span(kr - s.padding, s.stride, s.h, P);
    const ValidSpan qs = valid_span(ks - s.padding, s.stride, s.w, Q);
    for (int64_t i = 0; i < g; ++i) {
      const T* plane = x + (i * s.c + c) * s.h * s.w;
      T* out = col + row * cols + i * PQ;
      std::fill(out, out + ps.lo * Q, T(0));
      for (int64_t p = ps.lo; p < ps.hi; ++p) {
        const T* src = plane + (p * s.stride + kr - s.padding) * s.w;
        const int64_t shift = ks - s.padding;  // input column of output column q: q*stride + shift
        T* dst = out + p * Q;
        std::fill(dst, dst + qs.lo, T(0));
        if (s.stride == 1) {
          std::memcpy(dst + qs.lo, src + qs.lo + shift, static_cast<size_t>(qs.hi - qs.lo) * sizeof(T));
        } else {
          for (int64_t q = qs.lo; q < qs.hi; ++q) dst[q] = src[q * s.stride + shift];
        }
        std::fill(dst + qs.hi, dst + Q, T(0));
      }
      std::fill(out + ps.hi * Q, out + PQ, T(0));
    }
  }
}

// dx (g samples, zeroed by the caller) += the receptive fields in dcol, summed where they overlap.
// One thread per (sample, channel) plane, so no two threads write the same element.
template <class T>
void col2im(const T* dcol, T* dx, const ConvShape& s, int64_t g) {
  const int64_t P = s.p(), Q = s.q(), PQ = P * Q, cols = g * PQ;
  const int64_t planes = g * s.c;
#pragma omp parallel for schedule(static) if (planes * s.r * s.s * PQ > kParallelElements)
  for (int64_t plane_index = 0; plane_index < planes; ++plane_index) {
    const int64_t i = plane_index / s.c, c = plane_index % s.c;
    T* plane = dx + plane_index * s.h * s.w;
    for (int64_t kr = 0; kr < s.r; ++kr) {
      const ValidSpan ps = valid_span(kr - s.padding, s.stride, s.h, P);
      for (int64_t ks = 0; ks < s.s; ++ks) {
        const ValidSpan qs = valid_span(ks - s.padding, s.stride, s.w, Q);
        const T* in = dcol + ((c * s.r + kr) * s.s + ks) * cols + i * PQ;
        const int64_t shift = ks - s.padding;
        for (int64_t p = ps.lo; p < ps.hi; ++p) {
          T* dst = plane + (p * s.stride + kr - s.padding) * s.w;
          const T* src = in + p * Q;
          for (int64_t q = qs.lo; q < qs.hi; ++q) dst[q * s.stride + shift] += src[q];
        }
      }
    }
  }
}

// (g, rows, PQ) sample-major <-> (rows, g*PQ) chunk-wide layouts.
template <class T>
void samples_to_wide(const T* samples, T* wide, int64_t rows, int64_t PQ, int64_t g) {
  for (int64_t i = 0; i < g; ++i)
    for (int64_t row = 0; row < rows; ++row)
      std::memcpy(wide + row * g * PQ + i * PQ, samples + (i * rows + row) * PQ, static_cast<size_t>(PQ) * sizeof(T));
}

template <class T>
void wide_to_samples(const T* wide, T* samples, int64_t rows, int64_t PQ, int64_t g) {
  for (int64_t i = 0; i < g; ++i)
    for (int64_t row = 0; row < rows; ++row)
      std::memcpy(samples + (i * rows + row) * PQ, wide + row * g * PQ + i * PQ, static_cast<size_t>(PQ) * sizeof(T));
}

// The chunk of output gradients as a (K, g*PQ) matrix: dy itself for one sample, else a copy.
template <class T>
const T* wide_output_gradient(const T* dy, const ConvShape& s, int64_t g) {
  if (g == 1) return dy;
  T* wide = scratch<T>(1, s.k * g * s.p() * s.q());
  samples_to_wide(dy, wide, s.k, s.p() * s.q(), g);
  return wide;
}

// The chunk's receptive fields as a (C*R*S, g*PQ) matrix: x itself for one pointwise sample.
template <class T>
const T* chunk_columns(const T* x, const ConvShape& s, int64_t g) {
  if (g == 1 && is_pointwise(s)) return x;
  T* col = scratch<T>(0, s.c * s.r * s.s * g * s.p() * s.q());
  im2col(x, col, s, g);
  return col;
}

// Runs chunk(n0, g) over the batch as the plan says: whole chunks per thread, or in turn.
template <class F>
void for_each_chunk(const ConvShape& s, const ConvPlan& plan, F&& chunk) {
  if (plan.chunks_across_threads) {
    detail::parallel_for_each(plan.chunks, [&](int64_t i) {
      chunk(i * plan.samples_per_gemm, std::min(plan.samples_per_gemm, s.n - i * plan.samples_per_gemm));
    });
  } else {
    for (int64_t i = 0; i < plan.chunks; ++i)
      chunk(i * plan.samples_per_gemm, std::min(plan.samples_per_gemm, s.n - i * plan.samples_per_gemm));
  }
}

template <class T>
void forward_chunk(const T* x, const T* w, T* y, const ConvShape& s, int64_t g) {
  const int64_t PQ = s.p() * s.q(), CRS = s.c * s.r * s.s;
  const T* col = chunk_columns(x, s, g);
  T* out = g == 1 ? y : scratch<T>(1, s.k * g * PQ);
  parallel_gemm(GemmArgs{.m = s.k, .n = g * PQ, .k = CRS, .lda = CRS, .ldb = g * PQ, .ldc = g * PQ}, w, col, out);
  if (g > 1) wide_to_samples(out, y, s.k, PQ, g);
}

template <class T>
void backward_data_chunk(const T* dy, const T* w, T* dx, const ConvShape& s, int64_t g) {
  const int64_t PQ = s.p() * s.q(), CRS = s.c * s.r * s.s;
  const T* dyc = wide_output_gradient(dy, s, g);
  const GemmArgs args{.trans_a = Transpose::Yes, .m = CRS, .n = g * PQ, .k = s.k, .lda = CRS, .ldb = g * PQ, .ldc = g * PQ};
  if (g == 1 && is_pointwise(s)) return parallel_gemm(args, w, dyc, dx);
  T* dcol = scratch<T>(0, CRS * g * PQ);
  parallel_gemm(args, w, dyc, dcol);
  std::fill(dx, dx + g * s.c * s.h * s.w, T(0));
  col2im(dcol, dx, s, g);
}

// dw (+)= dy_chunk * col_chunk^T; beta 0 for the first chunk into dw, 1 after.
template <class T>
void backward_filter_chunk(const T* x, const T* dy, T* dw, const ConvShape& s, int64_t g, double beta) {
  const int64_t PQ = s.p() * s.q(), CRS = s.c * s.r * s.s;
  const T* col = chunk_columns(x, s, g);
  const T* dyc = wide_output_gradient(dy, s, g);
  parallel_gemm(GemmArgs{.trans_b = Transpose::Yes, .m = s.k, .n = CRS, .k = g * PQ, .lda = g * PQ, .ldb = g * PQ,
                         .ldc = CRS, .beta = beta},
                dyc, col, dw);
}

}  // namespace

int ops_threads() { return detail::max_threads(); }

void set_ops_threads(int threads) {
  if (threads < 1) throw Error("set_ops_threads: " + std::to_string(threads) + " threads; expected at least 1");
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
}

ConvPlan plan_conv(const ConvShape& s, int threads) {
  const int64_t n = std::max<int64_t>(s.n, 1), PQ = std::max<int64_t>(s.p() * s.q(), 1);
  const int64_t wanted = (kMinGemmColumns + PQ - 1) / PQ;
  const int64_t affordable = std::max<int64_t>(kMaxChunkElements / std::max<int64_t>(s.c * s.r * s.s * PQ, 1), 1);
  const int64_t widest = std::clamp<int64_t>(std::min(wanted, affordable), 1, n);
  int64_t chunks = (n + widest - 1) / widest;
  const bool across = threads > 1 && n >= threads;
  if (across) chunks = std::min(n, (std::max<int64_t>(chunks, threads) + threads - 1) / threads * threads);
  ConvPlan plan;
  plan.samples_per_gemm = (n + chunks - 1) / chunks;
  plan.chunks = (n + plan.samples_per_gemm - 1) / plan.samples_per_gemm;
  plan.chunks_across_threads = across;
  return plan;
}

template <class T>
void conv2d_forward(const T* x, const T* w, T* y, const ConvShape& s) {
  const int64_t CHW = s.c * s.h * s.w, KPQ = s.k * s.p() * s.q();
  for_each_chunk(s, plan_conv(s, ops_threads()), [&](int64_t n0, int64_t g) {
    forward_chunk(x + n0 * CHW, w, y + n0 * KPQ, s, g);
  });
}

template <class T>
void conv2d_backward_data(const T* dy, const T* w, T* dx, const ConvShape& s) {
  const int64_t CHW = s.c * s.h * s.w, KPQ = s.k * s.p() * s.q();
  for_each_chunk(s, plan_conv(s, ops_threads()), [&](int64_t n0, int64_t g) {
    backward_data_chunk(dy + n0 * KPQ, w, dx + n0 * CHW, s, g);
  });
}

// Chunks in turn accumulate into dw; chunks across threads accumulate into one partial dw per
// thread, summed at the end.
template <class T>
void conv2d_backward_filter(const T* x, const T* dy, T* dw, const ConvShape& s) {
  const int64_t CHW = s.c * s.h * s.w, KPQ = s.k * s.p() * s.q(), size = s.k * s.c * s.r * s.s;
  const ConvPlan plan = plan_conv(s, ops_threads());
  std::fill(dw, dw + size, T(0));
  if (!plan.chunks_across_threads) {
    for (int64_t i = 0; i < plan.chunks; ++i) {
      const int64_t n0 = i * plan.samples_per_gemm;
      backward_filter_chunk(x + n0 * CHW, dy + n0 * KPQ, dw, s, std::min(plan.samples_per_gemm, s.n - n0), 1.0);
    }
    return;
  }
  std::vector<T*> partials(static_cast<size_t>(ops_threads()), nullptr);  // one per thread, on first use
  detail::parallel_for_each(plan.chunks, [&](int64_t i) {
    T*& partial = partials[static_cast<size_t>(detail::thread_index())];
    const double beta = partial ? 1.0 : 0.0;
    if (!partial) partial = scratch<T>(2, size);
    const int64_t n0 = i * plan.samples_per_gemm;
    backward_filter_chunk(x + n0 * CHW, dy + n0 * KPQ, partial, s, std::min(plan.samples_per_gemm, s.n - n0), beta);
  });
  std::erase(partials, nullptr);
#pragma omp parallel for schedule(static) if (size > kParallelElements)
  for (int64_t i = 0; i < size; ++i) {
    T sum = 0;
    for (const T* partial : partials) sum += partial[i];
    dw[i] = sum;
  }
}

#define HOOKRT_INSTANTIATE_CONV(T)                                                      \
  template void conv2d_forward<T>(const T*, const T*, T*, const ConvShape&);           \
  template void conv2d_backward_data<T>(const T*, const T*, T*, const ConvShape&);     \
  template void conv2d_backward_filter<T>(const T*, const T*, T*, const ConvShape&);
HOOKRT_INSTANTIATE_CONV(float)
HOOKRT_INSTANTIATE_CONV(double)
#undef HOOKRT_INSTANTIATE_CONV

}  // namespace hookrt::cpu
