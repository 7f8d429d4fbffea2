#pragma once
// Row-major GEMM over float or double through OpenBLAS, the ops' threading policy, and per-thread
// scratch buffers reused from call to call (a ResNet step would otherwise fault in fresh pages for
// every im2col).
//
// Threading: the ops parallelise with OpenMP themselves and call BLAS from inside their parallel
// regions, so BLAS runs single-threaded. Two thread pools (OpenMP's and OpenBLAS's pthreads, which
// spin while idle) fighting over the same cores made convolutions several times slower.
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <climits>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "hookrt/error.h"

namespace hookrt::cpu::detail {

enum class Transpose { No, Yes };

// c (m,n) = alpha * op(a) (m,kk) * op(b) (kk,n) + beta * c, all row-major with leading dimensions.
struct GemmArgs {
  Transpose trans_a = Transpose::No, trans_b = Transpose::No;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  double alpha = 1.0, beta = 0.0;
};

inline blasint blas_dim(int64_t value, const char* what) {
  if (value < 0 || value > INT_MAX)
    throw Error(std::string("gemm: ") + what + " = " + std::to_string(value) + " exceeds the BLAS integer range");
  return static_cast<blasint>(value);
}

inline CBLAS_TRANSPOSE blas_trans(Transpose t) { return t == Transpose::Yes ? CblasTrans : CblasNoTrans; }

// Makes OpenBLAS single-threaded, once per process (see the threading note above).
inline void use_single_threaded_blas() {
#ifdef OPENBLAS_VERSION
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
#endif
}

// Threads an op may use, and this thread's index within the current parallel region.
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

inline void gemm(const GemmArgs& g, const float* a, const float* b, float* c) {
  if (g.m == 0 || g.n == 0) return;
  use_single_threaded_blas();
  cblas_sgemm(CblasRowMajor, blas_trans(g.trans_a), blas_trans(g.trans_b), blas_dim(g.m, "m"),
              blas_dim(g.n, "n"), blas_dim(g.k, "k"), static_cast<float>(g.alpha), a,
              blas_dim(g.lda, "lda"), b, blas_dim(g.ldb, "ldb"), static_cast<float>(g.beta), c,
              blas_dim(g.ldc, "ldc"));
}

inline void gemm(const GemmArgs& g, const double* a, const double* b, double* c) {
  if (g.m == 0 || g.n == 0) return;
  use_single_threaded_blas();
  cblas_dgemm(CblasRowMajor, blas_trans(g.trans_a), blas_trans(g.trans_b), blas_dim(g.m, "m"),
              blas_dim(g.n, "n"), blas_dim(g.k, "k"), g.alpha, a, blas_dim(g.lda, "lda"), b,
              blas_dim(g.ldb, "ldb"), g.beta, c, blas_dim(g.ldc, "ldc"));
}

// A per-thread buffer of at least `count` elements; `slot` tells apart buffers needed at the same
// time. Contents are unspecified. Valid until the same thread asks for the same slot again.
template <class T>
T* scratch(int slot, int64_t count) {
  thread_local std::vector<T> buffers[3];
  std::vector<T>& buffer = buffers[slot];
  if (static_cast<int64_t>(buffer.size()) < count) buffer.resize(static_cast<size_t>(count));
  return buffer.data();
}

// Runs body(i) for i in [0, n) across the OpenMP threads. An exception escaping a parallel region
// would terminate the process, so the first one thrown is carried out and rethrown here.
// Statically: item i runs on the same thread in every run. With items handed to whichever thread
// was free, a training step's results changed from run to run under OpenBLAS's fallback kernels
// (its "Prescott" ones, for a CPU it does not know), although each item computed from the same
// values: an item's GEMMs came out with other bits on another thread (through that thread's
// scratch buffers or its own state; which of the two was not pinned down, and 64-byte aligned
// scratch did not help). The items are equal shares of the work (a GEMM's column blocks, a
// batch's images), so nothing is lost to imbalance.
template <class F>
void parallel_for_each(int64_t n, F&& body) {
  std::exception_ptr error;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (...) {
#pragma omp critical(hookrt_cpu_parallel_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// gemm() with the columns of c (and of op(b)) split into blocks across the OpenMP threads; a plain
// gemm() inside a parallel region or when the matrix is too narrow to share.
template <class T>
void parallel_gemm(const GemmArgs& g, const T* a, const T* b, T* c) {
  constexpr int64_t kMinBlockColumns = 64;
  const int64_t blocks = std::min<int64_t>(max_threads(), g.n / kMinBlockColumns);
  if (blocks <= 1 || in_parallel_region()) return gemm(g, a, b, c);
  const int64_t width = ((g.n + blocks - 1) / blocks + 15) / 16 * 16;  // multiples of 16 columns
  parallel_for_each(blocks, [&](int64_t block) {
    const int64_t j0 = block * width, j1 = std::min(g.n, j0 + width);
    if (j0 >= j1) return;
    GemmArgs part = g;
    part.n = j1 - j0;
    // Column j of op(b) is column j of b, or row j of b when b is transposed.
    const T* b_part = g.trans_b == Transpose::Yes ? b + j0 * g.ldb : b + j0;
    gemm(part, a, b_part, c + j0);
  });
}

}  // namespace hookrt::cpu::detail
